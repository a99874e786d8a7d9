//! ClickHouse for Touchline: the only crate that knows ClickHouse types.
//!
//! Touchline talks to ClickHouse over its HTTP interface (the `clickhouse`
//! crate, rows in `RowBinary`). One build must work against the server these
//! machines have (18.16, from Debian) and against current releases, so the
//! client is configured from `SELECT version()` at start-up ([`Warehouse`]):
//! old servers get no schema validation (they lack the describe settings and
//! `RowBinaryWithNamesAndTypes`) and no compression (an LZ4 insert into 18.16
//! reports success and stores nothing), current servers keep both.
//!
//! Schema objects are versioned SQL files in the repository's
//! `schemas/clickhouse/`, applied in order by [`migrate`]; the sink checks at
//! start-up that the tables it writes have the columns it writes.

pub mod dead_letters;
pub mod derived;
pub mod erasure;
mod error;
pub mod migrate;
pub mod rows;
pub mod summary;
mod warehouse;

pub use error::SinkError;
pub use rows::{DeadLetterRow, IdentityRow, SourcePosition, Table, TextRow, TimelineRow};
pub use warehouse::{ClickHouseConfig, ServerVersion, Warehouse};
