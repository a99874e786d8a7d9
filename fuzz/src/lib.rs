//! The body of the `decode_normalise` fuzz target: bytes from a source topic
//! through everything Touchline does with them before they reach ClickHouse.
//!
//! One input is offered as a message of each of the four channels to the
//! [`Decoder`], backed by a [`StaticRegistry`] that holds every upstream
//! schema under ids 1..=6 in the order of [`upstream::ALL`]; a record that
//! decodes is normalised and its identifiers are extracted. Whatever the
//! bytes, nothing may panic: bad input must come back as an error, which the
//! pipeline turns into a dead letter.
//!
//! This file has no dependency on libFuzzer, so that the stable test suite can
//! run the same body over the seed corpus and seeded mutations
//! (`tests/fuzz_corpus.rs`).

use touchline_avro::decoder::DEFAULT_MAX_MESSAGE_BYTES;
use touchline_avro::{upstream, Decoder, StaticRegistry};
use touchline_model::identity::identifiers;
use touchline_model::{normalise, Channel};

/// The processing time given to the normaliser: 2026-11-22T00:00:00Z, fixed
/// so that a run is reproducible.
pub const NOW_MS: i64 = 1_795_305_600_000;

/// A decoder whose registry holds every upstream schema, id `n` being the
/// `n`-th of [`upstream::ALL`].
pub fn decoder() -> Decoder<StaticRegistry> {
    let schemas = (1..)
        .zip(upstream::ALL.iter())
        .map(|(id, s)| (id, s.text.to_owned()));
    Decoder::new(StaticRegistry::new(schemas), DEFAULT_MAX_MESSAGE_BYTES)
}

/// What one input became on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Decoded and normalised into an event with this many identifiers.
    Event { identifiers: usize },
    /// Decoded, but the normaliser rejected it (a dead letter).
    Rejected(&'static str),
    /// Did not decode (a dead letter).
    Undecodable(&'static str),
}

/// Runs `data` as a message of `channel` through decode, normalise and
/// identifier extraction.
pub fn run_channel(decoder: &Decoder<StaticRegistry>, channel: Channel, data: &[u8]) -> Outcome {
    match decoder.decode_now(channel, data) {
        Err(error) => {
            assert!(
                !error.is_retryable(),
                "a static registry is never down: {error}"
            );
            Outcome::Undecodable(error.reason())
        }
        Ok(record) => {
            let ids = identifiers(&record);
            match normalise(&record, NOW_MS) {
                Ok(_) => Outcome::Event {
                    identifiers: ids.len(),
                },
                Err(error) => Outcome::Rejected(error.reason()),
            }
        }
    }
}

/// The fuzz body: `data` as a message of every channel.
pub fn run(decoder: &Decoder<StaticRegistry>, data: &[u8]) -> [Outcome; 4] {
    Channel::ALL.map(|channel| run_channel(decoder, channel, data))
}
