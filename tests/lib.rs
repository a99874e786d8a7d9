//! Repository-level integration tests for Touchline.
//!
//! This package holds no code of its own: its `[[test]]` targets (one flat
//! file each, named by area, such as `compose.rs`) check the repository as a
//! whole, across crates and deployment files. Run them with
//! `cargo test -p touchline-tests`.
