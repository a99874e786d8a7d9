//! The decoder Touchline had before its plans, kept for the tests as the
//! oracle the plan decoder must agree with: apache-avro 0.22 reads the body
//! into a `Value` tree, resolves the tree against the reader schema, and serde
//! fills the record from the tree (`apache_avro::from_value`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::Schema;
use touchline_model::source::{AppEvent, CallRecord, ChatbotEvent, SocialEvent};
use touchline_model::{Channel, SourceRecord};

use super::{record_name, DecodeError};
use crate::aliases::ReaderAliases;
use crate::{upstream, wire};

/// A writer schema with its resolved datum reader.
struct OldWriter {
    full_name: String,
    reader: Option<GenericDatumReader<'static>>,
}

/// The reader side of one channel.
struct OldReader {
    schema: &'static Schema,
    full_name: String,
    aliases: ReaderAliases,
}

/// The old decoder over a fixed set of registered schemas.
pub(super) struct Oracle {
    schemas: HashMap<u32, String>,
    readers: HashMap<Channel, OldReader>,
    writers: RefCell<HashMap<(Channel, u32), Arc<OldWriter>>>,
    max_message_bytes: usize,
}

impl Oracle {
    /// The old decoder with `schemas` registered by id.
    pub(super) fn new(
        schemas: impl IntoIterator<Item = (u32, String)>,
        max_message_bytes: usize,
    ) -> Self {
        let readers = Channel::ALL
            .into_iter()
            .map(|channel| {
                let text = upstream::reader(channel).text;
                let schema: &'static Schema =
                    Box::leak(Box::new(Schema::parse_str(text).expect("valid")));
                let full_name = record_name(schema).unwrap_or_default();
                let json = serde_json::from_str(text).expect("JSON");
                let aliases = ReaderAliases::of(&json);
                (
                    channel,
                    OldReader {
                        schema,
                        full_name,
                        aliases,
                    },
                )
            })
            .collect();
        Oracle {
            schemas: schemas.into_iter().collect(),
            readers,
            writers: RefCell::new(HashMap::new()),
            max_message_bytes,
        }
    }

    /// Decodes one message of `channel` as Touchline did before its plans.
    pub(super) fn decode(
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
        let writer = self.writer(channel, id)?;
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

    fn writer(&self, channel: Channel, id: u32) -> Result<Arc<OldWriter>, DecodeError> {
        if let Some(found) = self.writers.borrow().get(&(channel, id)) {
            return Ok(Arc::clone(found));
        }
        let text = self
            .schemas
            .get(&id)
            .ok_or(DecodeError::UnknownSchema { id })?;
        let bad_schema = |e: apache_avro::Error| DecodeError::BadWriterSchema {
            id,
            message: e.to_string(),
        };
        let target = &self.readers[&channel];
        let mut json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| DecodeError::BadWriterSchema {
                id,
                message: e.to_string(),
            })?;
        target.aliases.apply(&mut json);
        let schema = Schema::parse_str(&json.to_string()).map_err(bad_schema)?;
        let full_name = record_name(&schema).unwrap_or_else(|| "<not a record>".into());
        let reader = if full_name == target.full_name {
            let schema: &'static Schema = Box::leak(Box::new(schema));
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
        let writer = Arc::new(OldWriter { full_name, reader });
        self.writers
            .borrow_mut()
            .insert((channel, id), Arc::clone(&writer));
        Ok(writer)
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

/// Fills the channel's record from a resolved value.
pub(super) fn to_record(
    channel: Channel,
    value: &Value,
) -> Result<SourceRecord, apache_avro::Error> {
    Ok(match channel {
        Channel::Chatbot => SourceRecord::Chatbot(apache_avro::from_value::<ChatbotEvent>(value)?),
        Channel::App => SourceRecord::App(apache_avro::from_value::<AppEvent>(value)?),
        Channel::Social => SourceRecord::Social(apache_avro::from_value::<SocialEvent>(value)?),
        Channel::CallCenter => {
            SourceRecord::CallCenter(apache_avro::from_value::<CallRecord>(value)?)
        }
    })
}

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
