//! Messages to bytes: Confluent-framed Avro with the registry's schema ids,
//! and the deliberate ways of spoiling it.

use std::collections::BTreeMap;

use apache_avro::Schema;
use serde_json::Value;
use touchline_avro::encoder::encode_framed;
use touchline_avro::{upstream, wire};
use touchline_model::Channel;

use crate::error::LoadgenError;
use crate::message::{BadKind, BadMessage, Payload, INVALID_SYMBOL, UNKNOWN_SCHEMA_ID};

/// Registry ids of the upstream schema versions, by version label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaIds(BTreeMap<String, u32>);

impl SchemaIds {
    /// No ids yet.
    pub fn new() -> Self {
        SchemaIds::default()
    }

    /// Ids 1, 2, ... in the order of [`upstream::ALL`]: for encoding without a
    /// registry (tests, dumps).
    pub fn sequential() -> Self {
        let mut ids = SchemaIds::new();
        for (id, schema) in (1..).zip(upstream::ALL.iter()) {
            ids.insert(schema.name, id);
        }
        ids
    }

    /// Records the id of a version, e.g. `("chatbot.v2", 3)`.
    pub fn insert(&mut self, schema: &str, id: u32) {
        self.0.insert(schema.to_owned(), id);
    }

    /// The id of a version.
    pub fn get(&self, schema: &str) -> Option<u32> {
        self.0.get(schema).copied()
    }

    /// Every (version, id).
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.0.iter().map(|(name, id)| (name.as_str(), *id))
    }
}

/// The enum field that [`BadKind::InvalidEnum`] spoils, per channel.
fn spoiled_enum_field(channel: Channel) -> &'static str {
    match channel {
        Channel::Chatbot => "event_type",
        Channel::App => "platform",
        Channel::Social => "kind",
        Channel::CallCenter => "record_type",
    }
}

/// One writer schema version: its id, the schema, and the same schema with
/// [`INVALID_SYMBOL`] appended to one enum.
struct Writer {
    id: u32,
    schema: Schema,
    spoiled: Schema,
}

/// Encodes messages with fixed schema ids. Parsing the schemas is done once.
pub struct Encoder {
    writers: BTreeMap<&'static str, Writer>,
}

impl Encoder {
    /// An encoder for every upstream version that `ids` has an id for.
    pub fn new(ids: &SchemaIds) -> Result<Self, LoadgenError> {
        let mut writers = BTreeMap::new();
        for upstream in upstream::ALL.iter() {
            let Some(id) = ids.get(upstream.name) else {
                continue;
            };
            let bad_schema = |reason: String| LoadgenError::Encode {
                schema: upstream.name.to_owned(),
                reason,
            };
            let schema = Schema::parse_str(upstream.text).map_err(|e| bad_schema(e.to_string()))?;
            let mut json: Value =
                serde_json::from_str(upstream.text).map_err(|e| bad_schema(e.to_string()))?;
            add_symbol(&mut json, spoiled_enum_field(upstream.channel)).ok_or_else(|| {
                bad_schema(format!(
                    "no enum field `{}` to spoil",
                    spoiled_enum_field(upstream.channel)
                ))
            })?;
            let spoiled =
                Schema::parse_str(&json.to_string()).map_err(|e| bad_schema(e.to_string()))?;
            writers.insert(
                upstream.name,
                Writer {
                    id,
                    schema,
                    spoiled,
                },
            );
        }
        Ok(Encoder { writers })
    }

    fn writer(&self, schema: &str) -> Result<&Writer, LoadgenError> {
        self.writers
            .get(schema)
            .ok_or_else(|| LoadgenError::MissingSchemaId {
                schema: schema.to_owned(),
            })
    }

    /// The bytes to produce for `payload`.
    pub fn encode(&self, payload: &Payload) -> Result<Vec<u8>, LoadgenError> {
        match payload {
            Payload::Avro { schema, document } => {
                let writer = self.writer(schema)?;
                framed(writer.id, &writer.schema, schema, document)
            }
            Payload::Bad(bad) => self.encode_bad(bad),
        }
    }

    fn encode_bad(&self, bad: &BadMessage) -> Result<Vec<u8>, LoadgenError> {
        let writer = self.writer(bad.schema)?;
        let valid = || framed(writer.id, &writer.schema, bad.schema, &bad.document);
        Ok(match bad.kind {
            BadKind::TruncatedAvro => {
                let mut bytes = valid()?;
                let body = bytes.len().saturating_sub(wire::HEADER_LEN);
                let keep = (body * 2 / 3).clamp(1, body.saturating_sub(1).max(1));
                bytes.truncate(wire::HEADER_LEN + keep);
                bytes
            }
            BadKind::BadMagic => {
                serde_json::to_vec(&bad.document).map_err(|e| LoadgenError::Encode {
                    schema: bad.schema.to_owned(),
                    reason: e.to_string(),
                })?
            }
            BadKind::UnknownSchema => {
                let bytes = valid()?;
                wire::frame(UNKNOWN_SCHEMA_ID, &bytes[wire::HEADER_LEN..])
            }
            BadKind::WrongSchemaForTopic => valid()?,
            BadKind::InvalidEnum => framed(writer.id, &writer.spoiled, bad.schema, &bad.document)?,
        })
    }
}

fn framed(
    id: u32,
    schema: &Schema,
    name: &str,
    document: &Value,
) -> Result<Vec<u8>, LoadgenError> {
    encode_framed(id, schema, document.clone()).map_err(|e| LoadgenError::Encode {
        schema: name.to_owned(),
        reason: e.to_string(),
    })
}

/// Appends [`INVALID_SYMBOL`] to the enum type of the top-level `field`.
fn add_symbol(schema: &mut Value, field: &str) -> Option<()> {
    let fields = schema.get_mut("fields")?.as_array_mut()?;
    let field = fields
        .iter_mut()
        .find(|f| f.get("name").and_then(Value::as_str) == Some(field))?;
    let symbols = field
        .get_mut("type")?
        .get_mut("symbols")?
        .as_array_mut()?;
    symbols.push(Value::from(INVALID_SYMBOL));
    Some(())
}
