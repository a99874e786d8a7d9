-- Messages that could not become timeline events, with why and their bytes.
-- Keyed by their Kafka position, so a redelivered bad message is one row.
CREATE TABLE IF NOT EXISTS {database}.dead_letter_log
(
    topic       String,
    `partition` Int32,
    `offset`    Int64,
    reason      String,
    error       String,
    payload     String,
    received_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(received_at)
ORDER BY (topic, `partition`, `offset`);

CREATE VIEW IF NOT EXISTS {database}.dead_letters AS
SELECT topic, `partition`, `offset`, reason, error, payload, received_at
FROM {database}.dead_letter_log FINAL;
