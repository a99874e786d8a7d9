//! Bytes of a source topic to a [`SourceRecord`].
//!
//! Writer schemas are fetched from the registry once per id and kept, with a
//! datum reader already resolved against the channel's reader schema: building
//! that resolution is most of the cost of a decode, so it is done once per
//! schema id, not once per message. Schemas live as long as the process (there
//! are a handful per topic), which lets the cached readers borrow them.
//!
//! Each message is checked before it is decoded: its size, its Confluent
//! header, and that its writer schema is a version of the channel's record (a
//! schema registered for another topic is bad data, not something to resolve).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::Schema;
use thiserror::Error;
use touchline_model::source::{AppEvent, CallRecord, ChatbotEvent, SocialEvent};
use touchline_model::{Channel, SourceRecord};

use crate::aliases::ReaderAliases;
use crate::registry::{RegistryError, SchemaRegistry};
use crate::{upstream, wire};

/// Why a message could not be decoded. Everything but
/// [`DecodeError::RegistryUnavailable`] is bad data: the message goes to the
/// dead-letter table and the pipeline goes on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("message is {len} bytes, over the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error(transparent)]
    Frame(#[from] wire::FrameError),
    #[error(
        "schema id {id} is not in the schema registry; was it registered in another registry?"
    )]
    UnknownSchema { id: u32 },
    #[error("schema id {id} is `{found}`, not a version of `{expected}` that this topic carries")]
    WrongSchemaForTopic {
        id: u32,
        found: String,
        expected: String,
    },
    #[error("schema id {id} in the registry is not a valid Avro schema: {message}")]
    BadWriterSchema { id: u32, message: String },
    #[error("Avro body ends before the record does (schema id {id}): {message}")]
    TruncatedAvro { id: u32, message: String },
    #[error("Avro body has an enum symbol or union branch its schema does not allow (schema id {id}): {message}")]
    InvalidEnum { id: u32, message: String },
    #[error("Avro body does not decode with schema id {id}: {message}")]
    InvalidAvro { id: u32, message: String },
    #[error("Avro body has {extra} bytes after the record (schema id {id})")]
    TrailingBytes { id: u32, extra: usize },
    #[error("record of schema id {id} does not fit Touchline's reader schema: {message}")]
    Incompatible { id: u32, message: String },
    #[error("cannot fetch schema id {id}: {source}")]
    RegistryUnavailable { id: u32, source: RegistryError },
}

impl DecodeError {
    /// A short, stable reason for dead letters and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::Frame(wire::FrameError::TooShort { .. }) => "truncated_frame",
            DecodeError::Frame(wire::FrameError::BadMagic { .. }) => "bad_magic",
            DecodeError::UnknownSchema { .. } => "unknown_schema",
            DecodeError::WrongSchemaForTopic { .. } => "wrong_schema_for_topic",
            DecodeError::BadWriterSchema { .. } => "bad_writer_schema",
            DecodeError::TruncatedAvro { .. } => "truncated_avro",
            DecodeError::InvalidEnum { .. } => "invalid_enum",
            DecodeError::InvalidAvro { .. } => "invalid_avro",
            DecodeError::TrailingBytes { .. } => "trailing_bytes",
            DecodeError::Incompatible { .. } => "incompatible_schema",
            DecodeError::RegistryUnavailable { .. } => "registry_unavailable",
        }
    }

    /// Whether the same message may decode later (the registry was down):
    /// such a message is retried, never dead-lettered.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DecodeError::RegistryUnavailable { .. })
    }
}

/// A writer schema fetched from the registry, with its resolved reader.
struct WriterSchema {
    full_name: String,
    /// `None` when the schema is not a version of the channel's record.
    reader: Option<GenericDatumReader<'static>>,
}

/// The reader side of one channel.
#[derive(Debug)]
struct ReaderSchema {
    schema: &'static Schema,
    full_name: String,
    aliases: ReaderAliases,
}

/// Decodes messages of the four source topics.
pub struct Decoder<R> {
    registry: R,
    readers: HashMap<Channel, ReaderSchema>,
    writers: RwLock<HashMap<(Channel, u32), Arc<WriterSchema>>>,
    max_message_bytes: usize,
}

/// Default limit on a message's size, as Kafka's default `message.max.bytes`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

impl<R: SchemaRegistry> Decoder<R> {
    /// A decoder that fetches writer schemas from `registry` and rejects
    /// messages over `max_message_bytes`.
    pub fn new(registry: R, max_message_bytes: usize) -> Self {
        let readers = Channel::ALL
            .into_iter()
            .map(|channel| {
                let text = upstream::reader(channel).text;
                let schema: &'static Schema = Box::leak(Box::new(
                    Schema::parse_str(text).expect("the embedded upstream schemas are valid Avro"),
                ));
                let full_name = record_name(schema).unwrap_or_default();
                let json = serde_json::from_str(text).expect("the embedded schemas are JSON");
                let aliases = ReaderAliases::of(&json);
                (
                    channel,
                    ReaderSchema {
                        schema,
                        full_name,
                        aliases,
                    },
                )
            })
            .collect();
        Decoder {
            registry,
            readers,
            writers: RwLock::new(HashMap::new()),
            max_message_bytes,
        }
    }

    /// The registry behind this decoder.
    pub fn registry(&self) -> &R {
        &self.registry
    }

    /// How many (channel, writer schema) readers are cached.
    pub fn cached_schemas(&self) -> usize {
        self.writers.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Decodes one message of `channel`'s topic.
    pub async fn decode(
        &self,
        channel: Channel,
        bytes: &[u8],
    ) -> Result<SourceRecord, DecodeError> {
        if bytes.len() > self.max_message_bytes {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                limit: self.max_message_bytes,
            });
        }
        let (id, body) = wire::parse(bytes)?;
        let writer = self.writer(channel, id).await?;
        let Some(reader) = &writer.reader else {
            return Err(DecodeError::WrongSchemaForTopic {
                id,
                found: writer.full_name.clone(),
                expected: self.readers[&channel].full_name.clone(),
            });
        };
        let mut input = EofGuard {
            rest: body,
            hit_eof: false,
        };
        let value = reader.read_value(&mut input);
        if input.hit_eof {
            // apache-avro reads a union index or a boolean past the end as
            // null and carries on, so a cut-short body may even "succeed".
            return Err(DecodeError::TruncatedAvro {
                id,
                message: value.err().map_or_else(
                    || "the body ends inside the record".to_owned(),
                    |e| e.to_string(),
                ),
            });
        }
        let value = value.map_err(|e| classify(id, e))?;
        if !input.rest.is_empty() {
            return Err(DecodeError::TrailingBytes {
                id,
                extra: input.rest.len(),
            });
        }
        to_record(channel, &value).map_err(|e| DecodeError::Incompatible {
            id,
            message: e.to_string(),
        })
    }

    async fn writer(&self, channel: Channel, id: u32) -> Result<Arc<WriterSchema>, DecodeError> {
        if let Some(found) = self
            .writers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(channel, id))
        {
            return Ok(Arc::clone(found));
        }
        let text = self.registry.schema_by_id(id).await.map_err(|e| match e {
            RegistryError::NotFound { id } => DecodeError::UnknownSchema { id },
            source => DecodeError::RegistryUnavailable { id, source },
        })?;
        let bad_schema = |e: apache_avro::Error| DecodeError::BadWriterSchema {
            id,
            message: e.to_string(),
        };
        let target = &self.readers[&channel];
        let mut json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| DecodeError::BadWriterSchema {
                id,
                message: e.to_string(),
            })?;
        target.aliases.apply(&mut json);
        let schema = Schema::parse_str(&json.to_string()).map_err(bad_schema)?;
        let full_name = record_name(&schema).unwrap_or_else(|| "<not a record>".into());
        let reader = if full_name == target.full_name {
            let schema: &'static Schema = Box::leak(Box::new(schema));
            // apache-avro resolves every datum afresh (it rebuilds each record
            // through a map of its fields). A writer schema equal to the
            // reader's (structurally: names, types, logical types, order)
            // resolves to exactly the datum it wrote, so it is read as
            // written; any other is resolved field by field.
            let builder = GenericDatumReader::builder(schema);
            let reader = if *schema == *target.schema {
                builder.build()
            } else {
                builder.reader_schema(target.schema).build()
            }
            .map_err(bad_schema)?;
            Some(reader)
        } else {
            None
        };
        let writer = Arc::new(WriterSchema { full_name, reader });
        self.writers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((channel, id), Arc::clone(&writer));
        tracing::debug!(schema_id = id, %channel, record = %writer.full_name, "cached writer schema");
        Ok(writer)
    }
}

fn record_name(schema: &Schema) -> Option<String> {
    match schema {
        Schema::Record(record) => Some(record.name.fullname(None)),
        _ => None,
    }
}

/// The body being decoded, noting any attempt to read past its end.
struct EofGuard<'a> {
    rest: &'a [u8],
    hit_eof: bool,
}

impl std::io::Read for EofGuard<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.len() > self.rest.len() {
            self.hit_eof = true;
        }
        self.rest.read(buf)
    }
}

/// Sorts an Avro error (met within the body) into the bad-data reasons that
/// dead letters report.
fn classify(id: u32, error: apache_avro::Error) -> DecodeError {
    let message = error.to_string();
    let lower = message.to_ascii_lowercase();
    if lower.contains("enum") || lower.contains("union") {
        DecodeError::InvalidEnum { id, message }
    } else {
        DecodeError::InvalidAvro { id, message }
    }
}

fn to_record(channel: Channel, value: &Value) -> Result<SourceRecord, apache_avro::Error> {
    Ok(match channel {
        Channel::Chatbot => SourceRecord::Chatbot(apache_avro::from_value::<ChatbotEvent>(value)?),
        Channel::App => SourceRecord::App(apache_avro::from_value::<AppEvent>(value)?),
        Channel::Social => SourceRecord::Social(apache_avro::from_value::<SocialEvent>(value)?),
        Channel::CallCenter => {
            SourceRecord::CallCenter(apache_avro::from_value::<CallRecord>(value)?)
        }
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod read_as_written {
    use serde_json::json;

    use super::*;
    use crate::encoder::encode_framed;

    /// A writer schema equal to the reader's is read without resolution; the
    /// datum must be the one resolution gives.
    #[test]
    fn resolving_into_an_equal_schema_changes_nothing() {
        let documents = [
            (
                "chatbot.v2",
                json!({
                    "event_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "conversation_id": "c-1",
                    "occurred_at": 1_772_323_200_000_i64, "event_type": "USER_MESSAGE",
                    "visitor_id": "v-1",
                    "user": {"account_id": "A-1", "email": null, "phone": "010-1234-5678"},
                    "surface": "KAKAO", "intent": "billing.refund", "intent_confidence": 0.75,
                    "text": "refund please", "resolved": null, "csat": 4, "sentiment": -0.5,
                    "language": "ko", "bot_version": "7.1"
                }),
            ),
            (
                "app.v1",
                json!({
                    "event_id": "e-1", "event_name": "feedback_submitted",
                    "client_ts": "2026-03-01T09:15:02.120+09:00",
                    "server_ts": 1_772_324_102_120_000_i64, "device_id": "d-1", "user_id": "A-1",
                    "platform": "ANDROID", "app_version": "5.0", "screen": null,
                    "traits": {"email": "Kim@Example.com"},
                    "properties": {"rating": "5", "topic": "delivery"}
                }),
            ),
            (
                "social.v1",
                json!({
                    "id": "m-1", "platform": "X", "kind": "REVIEW", "thread_id": "t-1",
                    "in_reply_to": null, "author_handle": "@Kim", "author_is_brand": false,
                    "created_at_epoch_s": 1_772_323_200_i64, "text": "slow", "lang": "ko",
                    "sentiment_label": "NEGATIVE", "rating": 2, "topic": "delivery",
                    "resolved": null,
                    "linked_customer": {"account_id": null, "email": "k@example.com", "phone": null}
                }),
            ),
            (
                "callcenter.v2",
                json!({
                    "call_id": "call-1", "record_type": "SURVEY",
                    "started_at": 1_772_323_200_000_i64, "caller_number": "+82 10 1234 5678",
                    "account_id": null, "queue": "billing", "agent_id": "agent-7",
                    "wait_seconds": 12, "talk_seconds": 300, "hold_seconds": 5,
                    "wrap_seconds": 30, "transfers": 1, "disposition": "RESOLVED",
                    "survey": {"csat": 4, "ces": 6, "nps": 9}, "recording_consent": true
                }),
            ),
        ];
        for (name, document) in documents {
            let text = upstream::by_name(name).expect("known version").text;
            let writer = Schema::parse_str(text).expect("valid");
            let channel = Channel::ALL
                .into_iter()
                .find(|c| upstream::reader(*c).text == text)
                .expect("the newest version of a channel");
            let reader = Schema::parse_str(upstream::reader(channel).text).expect("valid");
            assert!(writer == reader, "{name} is its channel's reader schema");
            let framed = encode_framed(1, &writer, document).expect("encodes");
            let body = &framed[5..];
            let as_written = GenericDatumReader::builder(&writer)
                .build()
                .expect("reader")
                .read_value(&mut &body[..])
                .expect("reads");
            let resolved = GenericDatumReader::builder(&writer)
                .reader_schema(&reader)
                .build()
                .expect("reader")
                .read_value(&mut &body[..])
                .expect("resolves");
            assert_eq!(as_written, resolved, "{name}");
            assert_eq!(
                to_record(channel, &as_written).expect("fits"),
                to_record(channel, &resolved).expect("fits"),
                "{name}"
            );
        }
    }
}
