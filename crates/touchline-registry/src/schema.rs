//! Avro schema validation and the identity rule that decides when two
//! registrations are "the same schema".

use std::fmt::Write as _;

use apache_avro::Schema;
use serde_json::Value;

/// A schema text that `apache-avro` accepted, with the key that identifies it.
///
/// The key is the parsed schema written back as JSON with object keys sorted
/// and no whitespace. Two texts get the same key when they differ only in
/// layout, key order, `"string"` versus `{"type": "string"}`, or a full name
/// versus `namespace` + `name`; they get different keys when anything Avro
/// keeps differs, including `doc`, `default`, `aliases`, logical types and
/// custom attributes. This mirrors the Confluent registry, which compares the
/// Avro library's canonical string rather than the raw text. One known gap:
/// `apache-avro` drops a field's `order` attribute, so it plays no part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSchema {
    text: String,
    key: String,
}

/// Why a schema text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSchema(String);

impl ParsedSchema {
    /// Parses `text` as an Avro schema (no references to other schemas).
    ///
    /// # Errors
    ///
    /// [`InvalidSchema`] with the parser's explanation when `text` is not a
    /// valid Avro schema.
    pub fn parse(text: &str) -> Result<Self, InvalidSchema> {
        let schema = Schema::parse_str(text).map_err(|error| InvalidSchema(error.to_string()))?;
        let value = serde_json::to_value(&schema).map_err(|error| {
            InvalidSchema(format!("the parsed schema cannot be written back: {error}"))
        })?;
        let mut key = String::with_capacity(text.len());
        write_sorted(&value, &mut key);
        Ok(Self {
            text: text.to_owned(),
            key,
        })
    }

    /// The schema text exactly as it was submitted.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The identity key: equal keys mean the same schema.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Consumes the schema, returning the submitted text.
    #[must_use]
    pub fn into_text(self) -> String {
        self.text
    }
}

/// Writes `value` as compact JSON with every object's keys in sorted order, so
/// the result does not depend on how `serde_json` orders maps.
fn write_sorted(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (name, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // Display of a JSON string value is its quoted, escaped form.
                let _ = write!(out, "{}", Value::String(name.clone()));
                out.push(':');
                write_sorted(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> String {
        ParsedSchema::parse(text).unwrap().key().to_owned()
    }

    #[test]
    fn layout_and_key_order_do_not_change_identity() {
        let a = r#"{"type":"record","name":"R","namespace":"n","fields":[{"name":"a","type":"string"}]}"#;
        let b = r#"{
            "fields": [ { "type": {"type": "string"}, "name": "a" } ],
            "name": "n.R",
            "type": "record"
        }"#;
        assert_eq!(key(a), key(b));
    }

    #[test]
    fn doc_and_default_change_identity() {
        let plain = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
        let with_default =
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":0}]}"#;
        let with_doc =
            r#"{"type":"record","name":"R","doc":"d","fields":[{"name":"a","type":"int"}]}"#;
        assert_ne!(key(plain), key(with_default));
        assert_ne!(key(plain), key(with_doc));
        assert_ne!(key(with_default), key(with_doc));
    }

    #[test]
    fn logical_type_changes_identity() {
        assert_ne!(
            key(r#"{"type":"long"}"#),
            key(r#"{"type":"long","logicalType":"timestamp-millis"}"#)
        );
    }

    #[test]
    fn invalid_schema_is_refused_with_a_reason() {
        let error = ParsedSchema::parse(r#"{"type":"record","name":"R"}"#).unwrap_err();
        assert!(!error.to_string().is_empty());
        assert!(ParsedSchema::parse("not json").is_err());
        assert!(ParsedSchema::parse(r#"{"type":"nonsense"}"#).is_err());
    }

    #[test]
    fn text_is_kept_as_submitted() {
        let text = "  \"string\"  ";
        assert_eq!(ParsedSchema::parse(text).unwrap().text(), text);
    }
}
