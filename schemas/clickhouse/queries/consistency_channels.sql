-- Per channel over every day (the README's consistency summary): sums of the
-- daily aggregates, from which rates are recomputed (never averaged).
SELECT
    toString(channel) AS channel,
    sum(contacts) AS contacts,
    sum(resolved_contacts) AS resolved_contacts,
    sum(frt_responses) AS frt_count,
    sum(frt_sum_s) AS frt_sum_s,
    sum(conversations) AS conversations,
    sum(handed_off) AS handed_off,
    sum(csat_responses) AS csat_responses,
    sum(csat_top2) AS csat_top2,
    sum(nps_responses) AS nps_responses,
    sum(nps_promoters) AS nps_promoters,
    sum(nps_detractors) AS nps_detractors
FROM {database}.v_channel_daily
GROUP BY channel
ORDER BY channel
