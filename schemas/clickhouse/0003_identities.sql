-- Identity resolution (SPEC §3): the customer each identifier belongs to now.
-- Every pipeline instance writes the identifiers whose customer changed in its
-- copy of the identity graph; `version` is how many identity links that copy
-- had applied, so the answer of the most complete graph wins (see
-- docs/design/20261122_identity.md).
CREATE TABLE IF NOT EXISTS {database}.identity_assignments
(
    identifier  String,
    customer_id String,
    anchor      String,
    version     UInt64,
    updated_at  DateTime('UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY identifier;

CREATE VIEW IF NOT EXISTS {database}.v_identities AS
SELECT identifier, customer_id, anchor
FROM {database}.identity_assignments FINAL;

-- The timeline gains customer_id, looked up through the event's identity key.
DROP TABLE IF EXISTS {database}.v_timeline;

CREATE VIEW IF NOT EXISTS {database}.v_timeline AS
SELECT
    event_id,
    channel,
    occurred_at,
    occurred_at_ms,
    customer_id,
    topic,
    contact_id,
    kind,
    csat,
    ces,
    nps,
    sentiment
FROM
(
    SELECT *
    FROM {database}.timeline_events FINAL
) AS events
ANY LEFT JOIN
(
    SELECT identifier AS identity_key, customer_id
    FROM {database}.identity_assignments FINAL
) AS identities USING identity_key;
