//! Reading dead letters back, and forgetting them once replayed.

use clickhouse::Row;
use serde::Deserialize;

use crate::error::SinkError;
use crate::warehouse::Warehouse;

/// A dead letter to replay: where it was read, and its key and bytes.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    #[serde(with = "crate::rows::serde_bytes_as_string")]
    pub key: Vec<u8>,
    #[serde(with = "crate::rows::serde_bytes_as_string")]
    pub payload: Vec<u8>,
}

/// The dead letters with `reason` (all when `None`), oldest position first,
/// at most `limit`.
pub async fn pending(
    warehouse: &Warehouse,
    reason: Option<&str>,
    limit: u64,
) -> Result<Vec<DeadLetter>, SinkError> {
    let mut query = warehouse.client().query(
        "SELECT topic, `partition`, `offset`, key, payload FROM dead_letters \
         WHERE (? = '' OR reason = ?) ORDER BY topic, `partition`, `offset` LIMIT ?",
    );
    let reason = reason.unwrap_or_default();
    query = query.bind(reason).bind(reason).bind(limit);
    Ok(query.fetch_all::<DeadLetter>().await?)
}

/// Deletes `letters` from the dead-letter table (an asynchronous mutation:
/// they leave the view once ClickHouse has applied it).
pub async fn forget(warehouse: &Warehouse, letters: &[DeadLetter]) -> Result<(), SinkError> {
    if letters.is_empty() {
        return Ok(());
    }
    let positions: Vec<String> = letters
        .iter()
        .map(|l| {
            format!(
                "('{}', {}, {})",
                l.topic.replace('\\', "\\\\").replace('\'', "\\'"),
                l.partition,
                l.offset
            )
        })
        .collect();
    warehouse
        .execute(&format!(
            "ALTER TABLE {{database}}.dead_letter_log DELETE \
             WHERE (topic, `partition`, `offset`) IN ({})",
            positions.join(", ")
        ))
        .await
}
