//! Touchline's domain model.
//!
//! This crate knows the four source systems' records ([`source`]), the unified
//! timeline event they become ([`event`]), and the rules between the two
//! ([`normalise`]), as `SPEC.md` §2 pins them. It does no I/O and knows nothing
//! of Kafka, Avro or ClickHouse: decoders fill the source records, sinks read the
//! unified events.

pub mod contact;
pub mod event;
pub mod identity;
pub mod metrics;
pub mod normalise;
pub mod privacy;
pub mod source;

pub use event::{Channel, Scores, Topic, UnifiedEvent};
pub use identity::{
    customer_id, identifiers, CustomerId, IdKind, Identifier, IdentifierError, IdentityGraph,
};
pub use normalise::{normalise, NormaliseError};
pub use privacy::{Fingerprint, Pseudonymiser};
pub use source::SourceRecord;
