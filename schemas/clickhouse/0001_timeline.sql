-- The unified customer timeline: one row per delivery of a source event.
-- ReplacingMergeTree keeps the newest version of each event_id, and the view
-- reads with FINAL, so redeliveries never show twice. Times are kept to the
-- millisecond in occurred_at_ms (ClickHouse 18.16 has no DateTime64); the
-- DateTime column serves partitioning and dashboards.
CREATE TABLE IF NOT EXISTS {database}.timeline_events
(
    event_id         String,
    channel          Enum8('chatbot' = 1, 'app' = 2, 'social' = 3, 'call_center' = 4),
    occurred_at      DateTime('UTC'),
    occurred_at_ms   Int64,
    topic            Enum8('billing' = 1, 'delivery' = 2, 'account' = 3, 'product' = 4, 'technical' = 5, 'other' = 6),
    contact_id       String,
    -- The event's first identifier in anchor order (SPEC §3), '' if none: its
    -- customer is looked up through identity_assignments at query time, so a
    -- later merge or split moves the event without rewriting it.
    identity_key     String,
    kind             String,
    csat             Nullable(UInt8),
    ces              Nullable(UInt8),
    nps              Nullable(UInt8),
    sentiment        Nullable(Float32),
    source_topic     String,
    source_partition Int32,
    source_offset    Int64,
    ingested_at      DateTime('UTC'),
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY event_id;

CREATE VIEW IF NOT EXISTS {database}.v_timeline AS
SELECT
    event_id,
    channel,
    occurred_at,
    occurred_at_ms,
    topic,
    contact_id,
    kind,
    csat,
    ces,
    nps,
    sentiment
FROM {database}.timeline_events FINAL;
