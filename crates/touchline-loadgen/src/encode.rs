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
pub(crate) fn spoiled_enum_field(channel: Channel) -> &'static str {
    match channel {
        Channel::Chatbot => "event_type",
        Channel::App => "platform",
        Channel::Social => "kind",
        Channel::CallCenter => "record_type",
    }
}

/// One writer schema version: its id, the schema as it is encoded with, and
/// the same with [`INVALID_SYMBOL`] appended to one enum.
struct Writer {
    id: u32,
    schema: Schema,
    spoiled: Schema,
    /// Top-level fields whose map type was rewritten (see [`stable_maps`]).
    map_fields: Vec<String>,
}

/// Encodes messages with fixed schema ids. Parsing the schemas is done once.
///
/// Avro maps are written in the order of apache-avro's `HashMap`, which
/// changes from run to run. To keep a seed's bytes the same everywhere (and
/// a duplicate byte-identical to its original), each top-level `map` field
/// is encoded as an array of key/value records in key order, which is the
/// same bytes as a map block holding those entries: a count, then each key
/// and value, then a zero.
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
            let mut json: Value =
                serde_json::from_str(upstream.text).map_err(|e| bad_schema(e.to_string()))?;
            let map_fields = stable_maps(&mut json);
            let schema =
                Schema::parse_str(&json.to_string()).map_err(|e| bad_schema(e.to_string()))?;
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
                    map_fields,
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
                framed(writer, &writer.schema, schema, document)
            }
            Payload::Bad(bad) => self.encode_bad(bad),
        }
    }

    fn encode_bad(&self, bad: &BadMessage) -> Result<Vec<u8>, LoadgenError> {
        let writer = self.writer(bad.schema)?;
        let valid = || framed(writer, &writer.schema, bad.schema, &bad.document);
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
            BadKind::InvalidEnum => framed(writer, &writer.spoiled, bad.schema, &bad.document)?,
        })
    }
}

/// Rewrites each top-level `map` field of a record schema as an array of
/// `{key, value}` records (same binary encoding), and returns their names.
fn stable_maps(schema: &mut Value) -> Vec<String> {
    let mut rewritten = Vec::new();
    let Some(fields) = schema.get_mut("fields").and_then(Value::as_array_mut) else {
        return rewritten;
    };
    for field in fields {
        let Some(name) = field.get("name").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        let Some(values) = field
            .get("type")
            .filter(|t| t.get("type").and_then(Value::as_str) == Some("map"))
            .and_then(|t| t.get("values"))
            .cloned()
        else {
            continue;
        };
        field["type"] = serde_json::json!({
            "type": "array",
            "items": {
                "type": "record",
                "name": format!("StableMapEntry_{name}"),
                "fields": [
                    {"name": "key", "type": "string"},
                    {"name": "value", "type": values},
                ],
            },
        });
        if field.get("default").is_some() {
            field["default"] = serde_json::json!([]);
        }
        rewritten.push(name);
    }
    rewritten
}

/// The document with each rewritten map field as an array of entries, in
/// key order.
fn with_stable_maps(document: &Value, map_fields: &[String]) -> Value {
    let mut document = document.clone();
    for name in map_fields {
        if let Some(field) = document.get_mut(name.as_str()) {
            if let Some(map) = field.as_object() {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let entries: Vec<Value> = entries
                    .into_iter()
                    .map(|(key, value)| serde_json::json!({"key": key, "value": value}))
                    .collect();
                *field = Value::Array(entries);
            }
        }
    }
    document
}

fn framed(
    writer: &Writer,
    schema: &Schema,
    name: &str,
    document: &Value,
) -> Result<Vec<u8>, LoadgenError> {
    let document = with_stable_maps(document, &writer.map_fields);
    encode_framed(writer.id, schema, document).map_err(|e| LoadgenError::Encode {
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
    let symbols = field.get_mut("type")?.get_mut("symbols")?.as_array_mut()?;
    symbols.push(Value::from(INVALID_SYMBOL));
    Some(())
}
