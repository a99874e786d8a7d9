//! The messages to produce, before they are encoded.
//!
//! Encoding needs the schema ids the registry assigns, so a message holds its
//! record as JSON plus the name of its writer schema version; [`crate::encode`]
//! turns it into bytes once the ids are known.

use serde_json::Value;
use touchline_model::Channel;

/// One message for a source topic.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceMessage {
    /// The channel whose topic the message is produced to
    /// ([`Channel::source_topic`]). For a record of the wrong channel's
    /// schema this is the topic's channel, not the record's.
    pub channel: Channel,
    /// The Kafka key (`SPEC.md` §1): conversation_id, device_id, thread_id or
    /// call_id.
    pub key: String,
    pub payload: Payload,
    /// The truth event this message delivers; `None` for a malformed message.
    pub event_id: Option<String>,
    /// 1 for the first delivery of an event, 2 for its duplicate; 1 for a
    /// malformed message.
    pub delivery: u32,
}

impl SourceMessage {
    /// The topic to produce to.
    pub fn topic(&self) -> &'static str {
        self.channel.source_topic()
    }
}

/// What a message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A valid record, to be written with the named upstream schema version.
    Avro {
        /// Upstream version label, e.g. `callcenter.v1` (see
        /// [`touchline_avro::upstream::by_name`]).
        schema: &'static str,
        /// The record as JSON, in the shape `touchline_avro::encoder` takes:
        /// objects for records and maps, strings for enums, every field present.
        document: Value,
    },
    /// A deliberately malformed message.
    Bad(BadMessage),
}

/// A malformed message: a record that is spoiled when it is encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct BadMessage {
    /// How it is spoiled, and so the dead-letter reason it must get.
    pub kind: BadKind,
    /// Its number among the malformed messages (see
    /// [`crate::truth::DeadLetter::number`]).
    pub number: u32,
    /// The upstream version the record is written with (for
    /// [`BadKind::WrongSchemaForTopic`], another channel's).
    pub schema: &'static str,
    /// The record; for [`BadKind::InvalidEnum`] one enum field holds
    /// [`INVALID_SYMBOL`].
    pub document: Value,
}

/// The enum symbol written in place of a real one for [`BadKind::InvalidEnum`]:
/// the encoder appends it to the enum, so its index is one past the symbols
/// that the real schema knows.
pub const INVALID_SYMBOL: &str = "SYMBOL_FROM_THE_FUTURE";

/// The schema id written for [`BadKind::UnknownSchema`]; registries hand out
/// small ids, so it is assumed not to be registered.
pub const UNKNOWN_SCHEMA_ID: u32 = 999_999;

/// The ways a message is spoiled, each with the dead-letter reason Touchline
/// must give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BadKind {
    /// A valid framed encoding cut short inside the Avro body.
    TruncatedAvro,
    /// The record as JSON text: the first byte is `{`, not the magic byte 0.
    BadMagic,
    /// A valid body framed with schema id [`UNKNOWN_SCHEMA_ID`].
    UnknownSchema,
    /// A valid record of another channel's schema, on this topic.
    WrongSchemaForTopic,
    /// An enum index past the end of the enum's symbols.
    InvalidEnum,
}

impl BadKind {
    /// Every kind, in the order malformed messages cycle through them.
    pub const ALL: [BadKind; 5] = [
        BadKind::TruncatedAvro,
        BadKind::BadMagic,
        BadKind::UnknownSchema,
        BadKind::WrongSchemaForTopic,
        BadKind::InvalidEnum,
    ];

    /// The dead-letter reason Touchline must record.
    pub fn reason(self) -> &'static str {
        match self {
            BadKind::TruncatedAvro => "truncated_avro",
            BadKind::BadMagic => "bad_magic",
            BadKind::UnknownSchema => "unknown_schema",
            BadKind::WrongSchemaForTopic => "wrong_schema_for_topic",
            BadKind::InvalidEnum => "invalid_enum",
        }
    }
}
