//! What the README's main command prints at the end: per channel, what
//! reached the timeline, read back from the views. The SQL lives in
//! `schemas/clickhouse/queries/`, where the test suite also runs it on a
//! current ClickHouse.

use clickhouse::Row;
use serde::Deserialize;

use crate::error::SinkError;
use crate::warehouse::Warehouse;

const CHANNEL_SUMMARY: &str =
    include_str!("../../../schemas/clickhouse/queries/channel_summary.sql");
const DEAD_LETTER_SUMMARY: &str =
    include_str!("../../../schemas/clickhouse/queries/dead_letter_summary.sql");

/// One channel's totals in `v_timeline`.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct ChannelSummary {
    pub channel: String,
    pub events: u64,
    pub customers: u64,
    pub contacts: u64,
    pub csat_responses: u64,
    pub csat_top2: u64,
    pub first_event_ms: i64,
    pub last_event_ms: i64,
}

impl ChannelSummary {
    /// CSAT % (share of answers 4..5, times 100), if anyone answered.
    pub fn csat_percent(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        (self.csat_responses > 0)
            .then(|| 100.0 * self.csat_top2 as f64 / self.csat_responses as f64)
    }
}

/// Per-channel totals of the timeline, in channel order.
pub async fn channels(warehouse: &Warehouse) -> Result<Vec<ChannelSummary>, SinkError> {
    warehouse.fetch_all(CHANNEL_SUMMARY).await
}

/// Dead letters by reason.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct DeadLetterSummary {
    pub reason: String,
    pub messages: u64,
}

/// How many messages were dead-lettered, by reason.
pub async fn dead_letters(warehouse: &Warehouse) -> Result<Vec<DeadLetterSummary>, SinkError> {
    warehouse.fetch_all(DEAD_LETTER_SUMMARY).await
}
