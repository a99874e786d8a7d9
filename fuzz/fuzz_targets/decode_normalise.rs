//! Fuzz target: arbitrary bytes as a message of each source topic, through
//! the Avro decoder, the normaliser and identifier extraction. It must never
//! panic. Run it with `cargo +nightly fuzz run decode_normalise` (see
//! `fuzz/README.md`).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use touchline_avro::{Decoder, StaticRegistry};

/// One decoder for the whole run, as in the pipeline: its cache of compiled
/// writer-schema plans fills with the first inputs that name each id.
static DECODER: LazyLock<Decoder<StaticRegistry>> = LazyLock::new(touchline_fuzz::decoder);

fuzz_target!(|data: &[u8]| {
    touchline_fuzz::run(&DECODER, data);
});
