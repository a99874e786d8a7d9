//! Fuzz target: arbitrary bytes as a message of each source topic, through
//! the Avro decoder, the normaliser and identifier extraction. It must never
//! panic. Run it with `cargo +nightly fuzz run decode_normalise` (see
//! `fuzz/README.md`).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use touchline_avro::{Decoder, StaticRegistry};

/// One decoder for the whole run, as in the pipeline: its writer-schema cache
/// fills with the first inputs that name each id. It lives in a static so
/// that the schemas it keeps for the life of the process (`Box::leak`, by
/// design) stay reachable and are not reported as leaks.
static DECODER: LazyLock<Decoder<StaticRegistry>> = LazyLock::new(touchline_fuzz::decoder);

fuzz_target!(|data: &[u8]| {
    touchline_fuzz::run(&DECODER, data);
});
