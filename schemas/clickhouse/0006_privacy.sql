-- Message text (chatbot and social messages), stored only for the channels
-- that `privacy.store_text` enables; none by default. Apart from the
-- timeline so that it can be granted, kept and erased on its own terms:
-- `touchline forget` deletes a customer's rows by identity key and by
-- contact (the brand's replies in the customer's threads).
CREATE TABLE IF NOT EXISTS {database}.message_texts
(
    event_id     String,
    channel      Enum8('chatbot' = 1, 'app' = 2, 'social' = 3, 'call_center' = 4),
    occurred_at  DateTime('UTC'),
    contact_id   String,
    identity_key String,
    text         String,
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY event_id;

CREATE VIEW IF NOT EXISTS {database}.v_messages AS
SELECT
    event_id,
    channel,
    occurred_at,
    customer_id,
    contact_id,
    text
FROM
(
    SELECT *
    FROM {database}.message_texts FINAL
) AS texts
ANY LEFT JOIN
(
    SELECT identifier AS identity_key, customer_id
    FROM {database}.identity_assignments FINAL
) AS identities USING identity_key;
