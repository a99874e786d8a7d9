//! Identity resolution, `SPEC.md` §3: which identifiers an event carries
//! ([`record`]), their normal forms ([`identifier`]), and the graph that
//! links them into customers ([`graph`]).
//!
//! The stream processor calls, per event, [`identifiers`] and
//! [`IdentityGraph::link`], then per batch [`IdentityGraph::take_changes`] to
//! learn which identifiers moved to another customer, and
//! [`IdentityGraph::customer_of_event`] for each event's customer. Everything
//! here is pure: no I/O, no clock, no randomness, so the customers are a
//! function of the set of distinct events.

pub mod graph;
pub mod identifier;
pub mod record;

pub use graph::{customer_id, CustomerId, IdentityGraph};
pub use identifier::{IdKind, Identifier, IdentifierError};
pub use record::{identifiers, identifiers_with_rejects};
