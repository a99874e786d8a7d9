//! A small development implementation of the Confluent Schema Registry REST
//! API, for the local stack and the tests, where no real registry can run.
//! Production points at Confluent's, Redpanda's or Apicurio's registry.
//!
//! It answers the endpoints below the way the Confluent registry does (same
//! paths, bodies, error codes and content type
//! `application/vnd.schemaregistry.v1+json`), so real clients work against it:
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /subjects/{subject}/versions` `{"schema": "..."}` | `{"id": N}` |
//! | `POST /subjects/{subject}` `{"schema": "..."}` | `{"subject", "version", "id", "schema"}` |
//! | `GET /subjects` | `["subject", ...]` |
//! | `GET /subjects/{subject}/versions` | `[1, 2, ...]` |
//! | `GET /subjects/{subject}/versions/{version}` (`N`, `latest`, `-1`) | `{"subject", "version", "id", "schema"}` |
//! | `GET /subjects/{subject}/versions/{version}/schema` | the schema itself |
//! | `GET /schemas/ids/{id}` | `{"schema": "..."}` |
//! | `GET /schemas/ids/{id}/versions` | `[{"subject", "version"}, ...]` |
//! | `GET /schemas/types` | `["AVRO"]` |
//! | `GET /config` | `{"compatibilityLevel": "NONE"}` |
//! | `GET /` | `{}` |
//!
//! Errors take the Confluent form `{"error_code": N, "message": "..."}`:
//! 40401 subject not found, 40402 version not found, 40403 schema not found,
//! 42201 invalid schema, 42202 invalid version, 50001 data store failure, and
//! the HTTP status as the code for unknown routes (404), wrong methods (405),
//! unaccepted content types (415) and malformed JSON (400, or 422 for JSON of
//! the wrong shape). Request bodies must be sent as
//! `application/vnd.schemaregistry.v1+json`, `application/vnd.schemaregistry+json`,
//! `application/json` or `application/octet-stream`, as Confluent accepts.
//!
//! # Identity
//!
//! Schema ids are global and start at 1. The same schema gets the same id
//! under every subject, where "the same" is decided on the parsed schema, not
//! the raw text (see [`ParsedSchema`]). Registering a schema that the subject
//! already holds, at any version, returns its id and adds no version.
//! Responses return the schema text as it was first registered.
//!
//! # Not implemented
//!
//! - **Compatibility checks**: any valid Avro schema is accepted as the next
//!   version of any subject, whatever it replaces; `GET /config` says `NONE`
//!   to make that visible. Check compatibility against a real registry.
//! - Schema types other than Avro (JSON Schema, Protobuf) and schema
//!   references: refused with 42201.
//! - Deleting subjects or versions, `PUT /config`, per-subject config, modes,
//!   contexts, authentication, and the `normalize`, `deleted` and similar
//!   query parameters (ignored).
//!
//! # Persistence
//!
//! [`Registry::in_memory`] forgets everything when the process ends.
//! [`Registry::open`] keeps the state in a JSON file, rewritten atomically
//! after every change and loaded at start, so ids and versions survive a
//! restart.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = touchline_registry::Registry::open("registry.json")?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! axum::serve(listener, touchline_registry::router(registry)).await?;
//! # Ok(())
//! # }
//! ```

mod http;
mod schema;
mod store;

pub use http::{router, CONTENT_TYPE};
pub use schema::{InvalidSchema, ParsedSchema};
pub use store::{
    NotFound, Registration, Registry, SchemaId, StoreError, SubjectVersion, Version,
    VersionSelector,
};
