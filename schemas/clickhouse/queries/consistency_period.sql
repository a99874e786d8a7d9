-- Journeys over every day, and the mean of the daily gaps (days where two
-- channels qualified).
SELECT
    count() AS days,
    sum(journeys) AS journeys,
    sum(multichannel_journeys) AS multichannel_journeys,
    sum(ocr_journeys) AS ocr_journeys,
    sum(repeat_journeys) AS repeat_journeys,
    avg(csat_gap_pp) AS mean_daily_csat_gap_pp,
    avg(resolution_gap_pp) AS mean_daily_resolution_gap_pp
FROM {database}.v_consistency_daily
