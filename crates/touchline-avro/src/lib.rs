//! Avro for Touchline: the Confluent wire format, the schema registry, and
//! decoding of the four source topics into [`touchline_model::SourceRecord`].
//!
//! A message is framed as magic byte `0`, a 4-byte big-endian schema id, then
//! one Avro binary datum written with that schema ([`wire`]). The writer schema
//! is fetched from a Confluent-compatible registry by id and cached
//! ([`registry`]); the datum is then resolved against Touchline's reader schema
//! for the channel, the newest upstream version ([`upstream`]), so that every
//! upstream version, mixed on one topic, decodes into the same record
//! ([`decoder`]).

mod aliases;
pub mod decoder;
pub mod encoder;
pub mod registry;
pub mod upstream;
pub mod wire;

pub use decoder::{DecodeError, Decoder};
pub use registry::{HttpRegistry, RegistryError, SchemaRegistry, StaticRegistry};
