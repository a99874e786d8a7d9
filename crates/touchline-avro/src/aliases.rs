//! Field aliases of the reader schema, applied to writer schemas.
//!
//! The Avro specification lets a reader field match a writer field through the
//! reader's `aliases` (how `callcenter.v2` reads v1's `ani` as
//! `caller_number`). apache-avro 0.22 does not apply them when it resolves a
//! datum, so Touchline renames the writer's fields to the reader's names once,
//! when it first sees a writer schema. Decoding stays exact: the datum's bytes
//! do not depend on field names.

use std::collections::HashMap;

use serde_json::Value;

/// For each record of a reader schema (by full name): alias -> field name.
#[derive(Debug, Default, Clone)]
pub struct ReaderAliases(HashMap<String, HashMap<String, String>>);

impl ReaderAliases {
    /// Collects the field aliases of every record in `reader`.
    pub fn of(reader: &Value) -> Self {
        let mut aliases = ReaderAliases::default();
        walk_records(&mut reader.clone(), "", &mut |full_name, fields| {
            let renames: HashMap<String, String> = fields
                .iter()
                .filter_map(|field| {
                    let name = field.get("name")?.as_str()?;
                    let list = field.get("aliases")?.as_array()?;
                    Some(
                        list.iter()
                            .filter_map(Value::as_str)
                            .map(move |alias| (alias.to_owned(), name.to_owned())),
                    )
                })
                .flatten()
                .collect();
            if !renames.is_empty() {
                aliases.0.insert(full_name.to_owned(), renames);
            }
        });
        aliases
    }

    /// Renames the fields of `writer` that a reader field names as an alias,
    /// unless the writer already has a field of the reader's name.
    pub fn apply(&self, writer: &mut Value) {
        if self.0.is_empty() {
            return;
        }
        walk_records(writer, "", &mut |full_name, fields| {
            let Some(renames) = self.0.get(full_name) else {
                return;
            };
            let present: Vec<String> = fields
                .iter()
                .filter_map(|f| f.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect();
            for field in fields.iter_mut() {
                let Some(name) = field.get("name").and_then(Value::as_str) else {
                    continue;
                };
                if let Some(target) = renames.get(name) {
                    if !present.contains(target) {
                        field["name"] = Value::String(target.clone());
                    }
                }
            }
        });
    }
}

/// Calls `visit` with the full name and fields of every record schema in
/// `schema`, resolving names against the enclosing namespace.
fn walk_records<F>(schema: &mut Value, namespace: &str, visit: &mut F)
where
    F: FnMut(&str, &mut Vec<Value>),
{
    match schema {
        Value::Array(branches) => {
            for branch in branches {
                walk_records(branch, namespace, visit);
            }
        }
        Value::Object(object) => {
            let kind = object.get("type").cloned();
            match kind.as_ref().and_then(Value::as_str) {
                Some("record") | Some("error") => {
                    let name = object.get("name").and_then(Value::as_str).unwrap_or("");
                    let own_ns = object.get("namespace").and_then(Value::as_str);
                    let (full_name, ns) = match name.rsplit_once('.') {
                        Some((ns, _)) => (name.to_owned(), ns.to_owned()),
                        None => {
                            let ns = own_ns.unwrap_or(namespace);
                            let full = if ns.is_empty() {
                                name.to_owned()
                            } else {
                                format!("{ns}.{name}")
                            };
                            (full, ns.to_owned())
                        }
                    };
                    if let Some(Value::Array(fields)) = object.get_mut("fields") {
                        visit(&full_name, fields);
                        for field in fields.iter_mut() {
                            if let Some(ty) = field.get_mut("type") {
                                walk_records(ty, &ns, visit);
                            }
                        }
                    }
                }
                Some("array") => {
                    if let Some(items) = object.get_mut("items") {
                        walk_records(items, namespace, visit);
                    }
                }
                Some("map") => {
                    if let Some(values) = object.get_mut("values") {
                        walk_records(values, namespace, visit);
                    }
                }
                // A nested type object, e.g. {"type": {"type": "record", ...}}.
                _ => {
                    if let Some(inner) = object.get_mut("type").filter(|t| t.is_object()) {
                        walk_records(inner, namespace, visit);
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn renames_aliased_fields_of_nested_records_only() {
        let reader = json!({
            "type": "record", "name": "Call", "namespace": "cx",
            "fields": [
                {"name": "caller_number", "aliases": ["ani"], "type": "string"},
                {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [
                    {"name": "new_name", "aliases": ["old_name"], "type": "int"}
                ]}},
                {"name": "other", "type": {"type": "record", "name": "elsewhere.Inner", "fields": [
                    {"name": "x", "type": "int"}
                ]}}
            ]
        });
        let aliases = ReaderAliases::of(&reader);
        let mut writer = json!({
            "type": "record", "name": "Call", "namespace": "cx",
            "fields": [
                {"name": "ani", "type": "string"},
                {"name": "inner", "type": ["null", {"type": "record", "name": "Inner", "fields": [
                    {"name": "old_name", "type": "int"}
                ]}]},
                {"name": "other", "type": {"type": "record", "name": "elsewhere.Inner", "fields": [
                    {"name": "old_name", "type": "int"}
                ]}}
            ]
        });
        aliases.apply(&mut writer);
        assert_eq!(writer["fields"][0]["name"], "caller_number");
        assert_eq!(
            writer["fields"][1]["type"][1]["fields"][0]["name"],
            "new_name"
        );
        assert_eq!(
            writer["fields"][2]["type"]["fields"][0]["name"], "old_name",
            "a record of another full name keeps its fields"
        );
    }

    #[test]
    fn keeps_a_writer_field_that_already_has_the_readers_name() {
        let reader = json!({"type": "record", "name": "R", "fields": [
            {"name": "b", "aliases": ["a"], "type": "int"}
        ]});
        let aliases = ReaderAliases::of(&reader);
        let mut writer = json!({"type": "record", "name": "R", "fields": [
            {"name": "a", "type": "int"}, {"name": "b", "type": "int"}
        ]});
        aliases.apply(&mut writer);
        assert_eq!(writer["fields"][0]["name"], "a");
    }
}
