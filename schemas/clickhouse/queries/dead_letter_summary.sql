-- Dead letters by reason.
SELECT reason, count() AS messages
FROM {database}.dead_letters
GROUP BY reason
ORDER BY reason
