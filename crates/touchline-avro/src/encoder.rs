//! The producer side, for the load generator and tests: a JSON document
//! resolved against a writer schema, encoded as an Avro datum, framed.

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;

use crate::wire;

/// Encodes `document` (JSON whose shape follows `schema`: objects for records
/// and maps, strings for enums, plain values for unions) as one Avro datum
/// written with `schema`, framed with schema id `id`.
pub fn encode_framed(
    id: u32,
    schema: &Schema,
    document: serde_json::Value,
) -> Result<Vec<u8>, apache_avro::Error> {
    let value = Value::try_from(document)?.resolve(schema)?;
    let body = GenericDatumWriter::builder(schema)
        .build()?
        .write_value_to_vec(value)?;
    Ok(wire::frame(id, &body))
}
