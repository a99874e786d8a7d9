//! The rows Touchline writes, one struct per table, in the tables' column order.

use serde::{Deserialize, Serialize};
use touchline_model::UnifiedEvent;

/// A table Touchline writes, and the row type that fills it.
pub trait Table: clickhouse::RowOwned + clickhouse::RowWrite + Serialize + Send + Sync {
    /// The table's name in Touchline's database.
    const NAME: &'static str;
}

impl Table for TimelineRow {
    const NAME: &'static str = "timeline_events";
}

impl Table for DeadLetterRow {
    const NAME: &'static str = "dead_letter_log";
}

impl Table for IdentityRow {
    const NAME: &'static str = "identity_assignments";
}

impl Table for TextRow {
    const NAME: &'static str = "message_texts";
}

/// Where a message was read: its topic, partition and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A row of `timeline_events`.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct TimelineRow {
    pub event_id: String,
    /// `Enum8` code of the channel ([`touchline_model::Channel::code`]).
    pub channel: i8,
    /// Seconds since the Unix epoch, UTC.
    pub occurred_at: u32,
    pub occurred_at_ms: i64,
    /// `Enum8` code of the topic ([`touchline_model::Topic::code`]).
    pub topic: i8,
    /// Empty when the event belongs to no contact.
    pub contact_id: String,
    /// The event's first identifier in anchor order, empty if it has none.
    pub identity_key: String,
    pub kind: String,
    pub csat: Option<u8>,
    pub ces: Option<u8>,
    pub nps: Option<u8>,
    pub sentiment: Option<f32>,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    /// Seconds since the Unix epoch, UTC.
    pub ingested_at: u32,
    /// Microseconds since the Unix epoch at ingestion: the newest row of an
    /// event wins.
    pub version: u64,
}

impl TimelineRow {
    /// The row of `event`, read at `source`, ingested at `ingested_at_us`;
    /// `identity_key` is the typed form of its first identifier, or empty.
    pub fn new(
        event: &UnifiedEvent,
        identity_key: String,
        source: &SourcePosition,
        ingested_at_us: i64,
    ) -> Self {
        TimelineRow {
            event_id: event.event_id.clone(),
            channel: event.channel.code(),
            occurred_at: epoch_seconds(event.occurred_at_ms.div_euclid(1000)),
            occurred_at_ms: event.occurred_at_ms,
            topic: event.topic.code(),
            contact_id: event.contact_id.clone().unwrap_or_default(),
            identity_key,
            kind: event.kind.clone(),
            csat: event.scores.csat,
            ces: event.scores.ces,
            nps: event.scores.nps,
            sentiment: event.scores.sentiment,
            source_topic: source.topic.clone(),
            source_partition: source.partition,
            source_offset: source.offset,
            ingested_at: epoch_seconds(ingested_at_us.div_euclid(1_000_000)),
            version: u64::try_from(ingested_at_us).unwrap_or_default(),
        }
    }
}

/// A row of `identity_assignments`: the customer an identifier belongs to,
/// as a graph that had applied `version` identity links saw it.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct IdentityRow {
    /// Typed normal form, e.g. `email:kim@example.com`.
    pub identifier: String,
    pub customer_id: String,
    /// The identifier that anchors the customer.
    pub anchor: String,
    pub version: u64,
    /// Seconds since the Unix epoch, UTC.
    pub updated_at: u32,
}

impl IdentityRow {
    /// An assignment written at `now_us`.
    pub fn new(
        identifier: String,
        customer_id: String,
        anchor: String,
        version: u64,
        now_us: i64,
    ) -> Self {
        IdentityRow {
            identifier,
            customer_id,
            anchor,
            version,
            updated_at: epoch_seconds(now_us.div_euclid(1_000_000)),
        }
    }
}

/// A row of `message_texts`: an event's free text, for the channels whose
/// text the configuration stores.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct TextRow {
    pub event_id: String,
    /// `Enum8` code of the channel.
    pub channel: i8,
    /// Seconds since the Unix epoch, UTC.
    pub occurred_at: u32,
    /// Empty when the event belongs to no contact.
    pub contact_id: String,
    /// As in `timeline_events`.
    pub identity_key: String,
    pub text: String,
    /// As in `timeline_events`: the newest delivery wins.
    pub version: u64,
}

impl TextRow {
    /// The text row of `event`, whose timeline row is `timeline`.
    pub fn new(timeline: &TimelineRow, text: &str) -> Self {
        TextRow {
            event_id: timeline.event_id.clone(),
            channel: timeline.channel,
            occurred_at: timeline.occurred_at,
            contact_id: timeline.contact_id.clone(),
            identity_key: timeline.identity_key.clone(),
            text: text.to_owned(),
            version: timeline.version,
        }
    }
}

/// A row of `dead_letter_log`.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct DeadLetterRow {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The message's key, unchanged (empty when it had none).
    #[serde(with = "serde_bytes_as_string")]
    pub key: Vec<u8>,
    /// Short, stable reason, e.g. `truncated_avro`.
    pub reason: String,
    /// The full error, for a person.
    pub error: String,
    /// The message's bytes, unchanged.
    #[serde(with = "serde_bytes_as_string")]
    pub payload: Vec<u8>,
    /// Seconds since the Unix epoch, UTC.
    pub received_at: u32,
}

impl DeadLetterRow {
    /// The dead letter of the message at `source`.
    pub fn new(
        source: &SourcePosition,
        key: &[u8],
        reason: &str,
        error: String,
        payload: &[u8],
        received_at_us: i64,
    ) -> Self {
        DeadLetterRow {
            topic: source.topic.clone(),
            partition: source.partition,
            offset: source.offset,
            key: key.to_vec(),
            reason: reason.to_owned(),
            error,
            payload: payload.to_vec(),
            received_at: epoch_seconds(received_at_us.div_euclid(1_000_000)),
        }
    }
}

/// DateTime columns hold unsigned 32-bit seconds; the normaliser has already
/// rejected times outside 2000..now+1d, so clamping never bites real data.
pub(crate) fn epoch_seconds(seconds: i64) -> u32 {
    u32::try_from(seconds.max(0)).unwrap_or(u32::MAX)
}

/// A ClickHouse `String` is bytes: write and read them as such, not as UTF-8.
pub(crate) mod serde_bytes_as_string {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        struct Bytes;
        impl serde::de::Visitor<'_> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_str<E>(self, v: &str) -> Result<Vec<u8>, E> {
                Ok(v.as_bytes().to_vec())
            }
        }
        deserializer.deserialize_bytes(Bytes)
    }
}
