-- Contacts, journeys and the omnichannel metrics (SPEC §4-6); the design is
-- docs/design/20261122_contacts_journeys.md. Every table here is either
-- written once per source event (keyed by event, so redeliveries collapse)
-- or recomputed whole from those by the pipeline and versioned so that the
-- newest computation wins; views read them with FINAL.

-- What each event says about its contact, keyed by contact then event: the
-- pipeline reads a contact's facts back by primary key to recompute it.
CREATE TABLE IF NOT EXISTS {database}.contact_facts
(
    contact_id       String,
    event_id         String,
    channel          Enum8('chatbot' = 1, 'app' = 2, 'social' = 3, 'call_center' = 4),
    occurred_at_ms   Int64,
    topic            Enum8('billing' = 1, 'delivery' = 2, 'account' = 3, 'product' = 4, 'technical' = 5, 'other' = 6),
    role             Enum8('customer' = 1, 'responder' = 2, 'other' = 3),
    opens            UInt8,
    resolves         Nullable(UInt8),
    hands_off        UInt8,
    wait_seconds     Nullable(UInt32),
    handle_seconds   Nullable(UInt32),
    abandoned        UInt8,
    csat             Nullable(UInt8),
    ces              Nullable(UInt8),
    nps              Nullable(UInt8),
    -- The event's identity key (as in timeline_events) and the rank of its
    -- kind in the anchor order (account 0 ... visitor 5).
    identity_key     String,
    identity_rank    UInt8,
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (contact_id, event_id);

-- Scored events by day and channel, for the daily score metrics, and by
-- identity key, for the per-customer CSAT range.
CREATE TABLE IF NOT EXISTS {database}.scores
(
    day          Date,
    channel      Enum8('chatbot' = 1, 'app' = 2, 'social' = 3, 'call_center' = 4),
    event_id     String,
    identity_key String,
    csat         Nullable(UInt8),
    ces          Nullable(UInt8),
    nps          Nullable(UInt8),
    sentiment    Nullable(Float32),
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (day, channel, event_id);

-- The channels each identity key has events on: a customer's channels used.
CREATE TABLE IF NOT EXISTS {database}.identity_channels
(
    identity_key String,
    channel      Enum8('chatbot' = 1, 'app' = 2, 'social' = 3, 'call_center' = 4)
)
ENGINE = ReplacingMergeTree
ORDER BY (identity_key, channel);

-- One row per contact, recomputed from all its facts whenever one arrives;
-- `version` is how many distinct events it was computed from (a contact's
-- facts only grow, so the most complete computation wins). Its customer is
-- looked up through identity_key at query time, as the timeline's is.
CREATE TABLE IF NOT EXISTS {database}.contacts
(
    contact_id        String,
    channel           Enum8('chatbot' = 1, 'app' = 2, 'social' = 3, 'call_center' = 4),
    topic             Enum8('billing' = 1, 'delivery' = 2, 'account' = 3, 'product' = 4, 'technical' = 5, 'other' = 6),
    started_at        DateTime('UTC'),
    started_at_ms     Int64,
    resolved          UInt8,
    handed_off        UInt8,
    abandoned         UInt8,
    csat              Nullable(UInt8),
    ces               Nullable(UInt8),
    nps               Nullable(UInt8),
    first_response_ms Nullable(Int64),
    handle_seconds    Nullable(UInt32),
    events            UInt32,
    identity_key      String,
    version           UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY contact_id;

-- One row per customer: its journeys (parallel arrays, one element per
-- journey) and its stats, recomputed whole by the instance that owns the
-- customer's derive marks; `version` is the mark's offset. A customer merged
-- away gets a row with no contacts, journeys or channels.
CREATE TABLE IF NOT EXISTS {database}.customer_state
(
    customer_id                String,
    customer_channels          Array(String),
    customer_contacts          UInt32,
    csat_range                 Nullable(Float64),
    journey_ids                Array(String),
    journey_topics             Array(String),
    journey_started_at_ms      Array(Int64),
    journey_contacts           Array(UInt32),
    journey_channel_counts     Array(UInt8),
    journey_channel_switches   Array(UInt32),
    journey_resolved           Array(UInt8),
    journey_one_contact        Array(UInt8),
    journey_contact_ids        Array(Array(String)),
    journey_channels           Array(Array(String)),
    version                    UInt64,
    updated_at                 DateTime('UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY customer_id;

-- Per UTC day and channel, recomputed whole by the owner of the day's
-- derive marks; sums and counts, so that any range can be rolled up.
CREATE TABLE IF NOT EXISTS {database}.channel_daily
(
    day                 Date,
    channel             Enum8('chatbot' = 1, 'app' = 2, 'social' = 3, 'call_center' = 4),
    contacts            UInt64,
    resolved_contacts   UInt64,
    frt_responses       UInt64,
    frt_sum_s           Float64,
    frt_p50_s           Nullable(Float64),
    frt_p90_s           Nullable(Float64),
    calls               UInt64,
    handled_calls       UInt64,
    handle_sum_s        Float64,
    abandoned_calls     UInt64,
    conversations       UInt64,
    handed_off          UInt64,
    csat_responses      UInt64,
    csat_top2           UInt64,
    nps_responses       UInt64,
    nps_promoters       UInt64,
    nps_detractors      UInt64,
    ces_responses       UInt64,
    ces_sum             Float64,
    sentiment_responses UInt64,
    sentiment_sum       Float64,
    version             UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (day, channel);

-- Per UTC day of journey start, across channels.
CREATE TABLE IF NOT EXISTS {database}.consistency_daily
(
    day                   Date,
    journeys              UInt64,
    multichannel_journeys UInt64,
    ocr_journeys          UInt64,
    repeat_journeys       UInt64,
    channel_switches      UInt64,
    csat_gap_pp           Nullable(Float64),
    resolution_gap_pp     Nullable(Float64),
    version               UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY day;

CREATE VIEW IF NOT EXISTS {database}.v_contacts AS
SELECT
    contact_id,
    customer_id,
    channel,
    topic,
    started_at,
    started_at_ms,
    resolved,
    handed_off,
    abandoned,
    csat,
    ces,
    nps,
    first_response_ms / 1000 AS first_response_s,
    handle_seconds AS handle_s,
    events
FROM
(
    SELECT *
    FROM {database}.contacts FINAL
) AS contacts
ANY LEFT JOIN
(
    SELECT identifier AS identity_key, customer_id
    FROM {database}.identity_assignments FINAL
) AS identities USING identity_key;

CREATE VIEW IF NOT EXISTS {database}.v_journeys AS
SELECT
    journey_id,
    customer_id,
    topic,
    toDateTime(intDiv(started_at_ms, 1000), 'UTC') AS started_at,
    started_at_ms,
    contacts,
    channel_count,
    channel_switches,
    resolved,
    one_contact_resolution,
    contact_ids,
    channels
FROM
(
    SELECT *
    FROM {database}.customer_state FINAL
) AS customers
ARRAY JOIN
    journey_ids AS journey_id,
    journey_topics AS topic,
    journey_started_at_ms AS started_at_ms,
    journey_contacts AS contacts,
    journey_channel_counts AS channel_count,
    journey_channel_switches AS channel_switches,
    journey_resolved AS resolved,
    journey_one_contact AS one_contact_resolution,
    journey_contact_ids AS contact_ids,
    journey_channels AS channels;

CREATE VIEW IF NOT EXISTS {database}.v_customers AS
SELECT
    customer_id,
    customer_channels AS channels,
    length(customer_channels) AS channels_used,
    customer_contacts AS contacts,
    length(journey_ids) AS journeys,
    csat_range
FROM
(
    SELECT *
    FROM {database}.customer_state FINAL
) AS customers
WHERE notEmpty(customer_channels);

CREATE VIEW IF NOT EXISTS {database}.v_channel_daily AS
SELECT
    day,
    channel,
    contacts,
    resolved_contacts,
    if(contacts = 0, NULL, resolved_contacts / contacts) AS resolution_rate,
    frt_responses,
    frt_sum_s,
    if(frt_responses = 0, NULL, frt_sum_s / frt_responses) AS frt_mean_s,
    frt_p50_s,
    frt_p90_s,
    calls,
    handled_calls,
    handle_sum_s,
    if(handled_calls = 0, NULL, handle_sum_s / handled_calls) AS handle_mean_s,
    abandoned_calls,
    if(calls = 0, NULL, abandoned_calls / calls) AS abandon_rate,
    conversations,
    handed_off,
    if(conversations = 0, NULL, (conversations - handed_off) / conversations) AS containment_rate,
    csat_responses,
    csat_top2,
    if(csat_responses = 0, NULL, 100 * csat_top2 / csat_responses) AS csat_pct,
    nps_responses,
    nps_promoters,
    nps_detractors,
    if(nps_responses = 0, NULL, 100 * (toInt64(nps_promoters) - toInt64(nps_detractors)) / nps_responses) AS nps,
    ces_responses,
    if(ces_responses = 0, NULL, ces_sum / ces_responses) AS ces_mean,
    sentiment_responses,
    if(sentiment_responses = 0, NULL, sentiment_sum / sentiment_responses) AS sentiment_mean
FROM
(
    SELECT *
    FROM {database}.channel_daily FINAL
) AS days
WHERE contacts + csat_responses + nps_responses + ces_responses + sentiment_responses > 0;

CREATE VIEW IF NOT EXISTS {database}.v_consistency_daily AS
SELECT
    day,
    journeys,
    multichannel_journeys,
    ocr_journeys,
    repeat_journeys,
    if(journeys = 0, NULL, multichannel_journeys / journeys) AS multichannel_rate,
    if(journeys = 0, NULL, ocr_journeys / journeys) AS ocr_rate,
    if(journeys = 0, NULL, repeat_journeys / journeys) AS repeat_rate,
    channel_switches,
    csat_gap_pp,
    resolution_gap_pp
FROM
(
    SELECT *
    FROM {database}.consistency_daily FINAL
) AS days
WHERE journeys > 0 OR csat_gap_pp IS NOT NULL OR resolution_gap_pp IS NOT NULL;
