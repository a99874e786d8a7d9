-- Per channel: what reached the timeline (the README's demo summary).
SELECT
    toString(channel) AS channel,
    count() AS events,
    uniqExactIf(customer_id, customer_id != '') AS customers,
    uniqExactIf(contact_id, contact_id != '') AS contacts,
    countIf(isNotNull(csat)) AS csat_responses,
    countIf(ifNull(csat >= 4, 0)) AS csat_top2,
    min(occurred_at_ms) AS first_event_ms,
    max(occurred_at_ms) AS last_event_ms
FROM {database}.v_timeline
GROUP BY channel
ORDER BY channel
