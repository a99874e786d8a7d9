//! What the README's main command prints at the end: per channel, what
//! reached the timeline, and the omnichannel consistency (CSAT %, NPS,
//! resolution and the gaps between channels), read back from the views. The SQL lives in
//! `schemas/clickhouse/queries/`, where the test suite also runs it on a
//! current ClickHouse.

use clickhouse::Row;
use serde::Deserialize;
use touchline_model::metrics::ChannelDay;

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

const CONSISTENCY_CHANNELS: &str =
    include_str!("../../../schemas/clickhouse/queries/consistency_channels.sql");
const CONSISTENCY_PERIOD: &str =
    include_str!("../../../schemas/clickhouse/queries/consistency_period.sql");

/// One channel's contacts and scores over every day, from `v_channel_daily`.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct ChannelConsistency {
    pub channel: String,
    pub contacts: u64,
    pub resolved_contacts: u64,
    pub frt_count: u64,
    pub frt_sum_s: f64,
    pub conversations: u64,
    pub handed_off: u64,
    pub csat_responses: u64,
    pub csat_top2: u64,
    pub nps_responses: u64,
    pub nps_promoters: u64,
    pub nps_detractors: u64,
}

impl ChannelConsistency {
    /// The period as one [`ChannelDay`], for its rates and the gaps.
    pub fn as_channel_day(&self) -> ChannelDay {
        ChannelDay {
            contacts: self.contacts,
            resolved_contacts: self.resolved_contacts,
            frt_responses: self.frt_count,
            frt_sum_s: self.frt_sum_s,
            conversations: self.conversations,
            handed_off: self.handed_off,
            csat_responses: self.csat_responses,
            csat_top2: self.csat_top2,
            nps_responses: self.nps_responses,
            nps_promoters: self.nps_promoters,
            nps_detractors: self.nps_detractors,
            ..ChannelDay::default()
        }
    }
}

/// Journeys and the mean daily gaps over every day, from
/// `v_consistency_daily`.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct PeriodConsistency {
    pub days: u64,
    pub journeys: u64,
    pub multichannel_journeys: u64,
    pub ocr_journeys: u64,
    pub repeat_journeys: u64,
    pub mean_daily_csat_gap_pp: Option<f64>,
    pub mean_daily_resolution_gap_pp: Option<f64>,
}

/// Per-channel consistency over every day.
pub async fn consistency_channels(
    warehouse: &Warehouse,
) -> Result<Vec<ChannelConsistency>, SinkError> {
    warehouse.fetch_all(CONSISTENCY_CHANNELS).await
}

/// Journeys and daily gaps over every day.
pub async fn consistency_period(warehouse: &Warehouse) -> Result<PeriodConsistency, SinkError> {
    let mut rows: Vec<PeriodConsistency> = warehouse.fetch_all(CONSISTENCY_PERIOD).await?;
    rows.pop()
        .ok_or_else(|| SinkError::Schema("the consistency summary returned no row".into()))
}
