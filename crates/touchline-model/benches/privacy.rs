//! The per-event cost of pseudonymisation: a stored form (one per event, its
//! identity key, and one per changed identifier), a fingerprint (one per
//! identifier of an event while the suppression list is not empty) and a
//! keyed customer id.
//!
//! ```text
//! cargo bench -p touchline-model --bench privacy
//! ```

use divan::{black_box, Bencher};
use touchline_model::{Identifier, Pseudonymiser};

fn main() {
    divan::main();
}

const KEY: &[u8] = b"5f0c6a0e8d1b4c3a9e7f2d6b1a8c4e3f0b9d7a6c5e4f3a2b1c0d9e8f7a6b5c4d";

fn email() -> Identifier {
    Identifier::parse("email:kim.minji.1987@example.co.kr").expect("valid")
}

#[divan::bench]
fn stored_disabled(bencher: Bencher) {
    let (plain, id) = (Pseudonymiser::disabled(), email());
    bencher.bench_local(|| plain.stored(black_box(&id)));
}

#[divan::bench]
fn stored_keyed(bencher: Bencher) {
    let (keyed, id) = (Pseudonymiser::keyed(KEY).expect("key"), email());
    bencher.bench_local(|| keyed.stored(black_box(&id)));
}

#[divan::bench]
fn fingerprint_keyed(bencher: Bencher) {
    let (keyed, id) = (Pseudonymiser::keyed(KEY).expect("key"), email());
    bencher.bench_local(|| keyed.fingerprint(black_box(&id)));
}

#[divan::bench]
fn customer_id_keyed(bencher: Bencher) {
    let (keyed, id) = (Pseudonymiser::keyed(KEY).expect("key"), email());
    bencher.bench_local(|| keyed.customer_id(black_box(&id)));
}
