//! Bytes of a source topic to a [`SourceRecord`].
//!
//! Writer schemas are fetched from the registry once per id and kept, each
//! with a plan (`plan`) compiled against the channel's reader schema: the
//! writer-to-reader resolution (fields matched by name, defaults, promotions,
//! enum symbols, union branches) is worked out once per schema id, so that a
//! message is read in one pass straight into the record, through serde, with
//! no intermediate tree: strings are borrowed from the body until the record
//! takes its own copy (`read`).
//!
//! Each message is checked before it is decoded: its size, its Confluent
//! header, and that its writer schema is a version of the channel's record (a
//! schema registered for another topic is bad data, not something to resolve).
//! The reasons bad messages are dead-lettered for are the ones apache-avro's
//! `Value` path gave (the tests keep that path as an oracle).

mod cursor;
mod plan;
mod read;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, Waker};

use apache_avro::Schema;
use thiserror::Error;
use touchline_model::{Channel, SourceRecord};

use crate::aliases::ReaderAliases;
use crate::registry::{RegistryError, SchemaRegistry, StaticRegistry};
use crate::{upstream, wire};

use cursor::Reason;
use plan::Plan;
use read::Rejection;

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

/// A writer schema fetched from the registry, with its compiled plan.
struct WriterSchema {
    full_name: String,
    /// `None` when the schema is not a version of the channel's record.
    plan: Option<Plan>,
}

/// The reader side of one channel.
#[derive(Debug)]
struct ReaderSchema {
    schema: Schema,
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
                let schema =
                    Schema::parse_str(text).expect("the embedded upstream schemas are valid Avro");
                let full_name = record_name(&schema).unwrap_or_default();
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

    /// How many (channel, writer schema) plans are cached.
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
        let Some(plan) = &writer.plan else {
            return Err(DecodeError::WrongSchemaForTopic {
                id,
                found: writer.full_name.clone(),
                expected: self.readers[&channel].full_name.clone(),
            });
        };
        let record = match channel {
            Channel::Chatbot => plan.decode(body).map(SourceRecord::Chatbot),
            Channel::App => plan.decode(body).map(SourceRecord::App),
            Channel::Social => plan.decode(body).map(SourceRecord::Social),
            Channel::CallCenter => plan.decode(body).map(SourceRecord::CallCenter),
        };
        record.map_err(|rejection| rejected(id, rejection))
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
        let bad_schema = |message: String| DecodeError::BadWriterSchema { id, message };
        let target = &self.readers[&channel];
        let mut json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad_schema(e.to_string()))?;
        target.aliases.apply(&mut json);
        let schema = Schema::parse_str(&json.to_string()).map_err(|e| bad_schema(e.to_string()))?;
        let full_name = record_name(&schema).unwrap_or_else(|| "<not a record>".into());
        let plan = if full_name == target.full_name {
            // A writer schema equal to the reader's (structurally: names,
            // types, logical types, order) is read as written; any other is
            // resolved field by field.
            let as_written = schema == target.schema;
            Some(Plan::compile(&schema, &target.schema, as_written).map_err(bad_schema)?)
        } else {
            None
        };
        let writer = Arc::new(WriterSchema { full_name, plan });
        self.writers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((channel, id), Arc::clone(&writer));
        tracing::debug!(schema_id = id, %channel, record = %writer.full_name, "cached writer schema");
        Ok(writer)
    }
}

impl Decoder<StaticRegistry> {
    /// [`Decoder::decode`] without a runtime, for tests, benchmarks and the
    /// fuzz target: a [`StaticRegistry`] answers at once, so the decode is
    /// done on its first poll.
    pub fn decode_now(&self, channel: Channel, bytes: &[u8]) -> Result<SourceRecord, DecodeError> {
        let mut decode = std::pin::pin!(self.decode(channel, bytes));
        let mut context = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(result) = decode.as_mut().poll(&mut context) {
                return result;
            }
            std::thread::yield_now();
        }
    }
}

fn record_name(schema: &Schema) -> Option<String> {
    match schema {
        Schema::Record(record) => Some(record.name.fullname(None)),
        _ => None,
    }
}

/// The error for a body the plan rejected.
fn rejected(id: u32, rejection: Rejection) -> DecodeError {
    let fault = match rejection {
        Rejection::Trailing(extra) => return DecodeError::TrailingBytes { id, extra },
        Rejection::Fault(fault) => fault,
    };
    let message = fault.describe();
    match fault.reason {
        Reason::Truncated => DecodeError::TruncatedAvro { id, message },
        Reason::InvalidEnum => DecodeError::InvalidEnum { id, message },
        Reason::InvalidAvro => DecodeError::InvalidAvro { id, message },
        Reason::Incompatible => DecodeError::Incompatible { id, message },
    }
}

#[cfg(test)]
mod oracle;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod differential;
