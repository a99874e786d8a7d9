-- Dead letters keep their Kafka key too, so that `touchline replay` can
-- produce them again to the same partition as their neighbours.
ALTER TABLE {database}.dead_letter_log ADD COLUMN key String AFTER `offset`;

DROP TABLE IF EXISTS {database}.dead_letters;

CREATE VIEW IF NOT EXISTS {database}.dead_letters AS
SELECT topic, `partition`, `offset`, key, reason, error, payload, received_at
FROM {database}.dead_letter_log FINAL;
