//! The `decode_normalise` fuzz target on stable Rust: its body
//! (`fuzz/src/lib.rs`) over the seed corpus in `fuzz/corpus/decode_normalise/`
//! and over a few thousand seeded mutations of it. Nothing may panic; seeds
//! named `valid-*` must become events and seeds named `bad-*` dead letters
//! with the reason in their name.
//!
//! The real fuzzer (libFuzzer, nightly) explores far more; see
//! `fuzz/README.md`. `write_seed_corpus` (ignored) rewrites the seeds from
//! the load generator.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use touchline_loadgen::{generate, Encoder, Payload, Scenario, SchemaIds};
use touchline_model::Channel;

#[path = "../fuzz/src/lib.rs"]
mod fuzz_body;

use fuzz_body::Outcome;

/// Mutated inputs the stable test runs.
const MUTATIONS: usize = 10_000;
/// Fixed, so that a failure names an input that can be replayed.
const MUTATION_SEED: u64 = 0x5EED_70C4_11E5;

fn corpus_dir() -> PathBuf {
    touchline_tests::repo_root().join("fuzz/corpus/decode_normalise")
}

/// The seed corpus: file name and bytes, sorted by name.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir())
        .expect("the seed corpus exists")
        .map(|entry| {
            let path = entry.expect("a corpus entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("a file name")
                .to_owned();
            (name, std::fs::read(&path).expect("a readable seed"))
        })
        .collect();
    seeds.sort();
    assert!(
        seeds.len() >= 20,
        "the seed corpus has {} files",
        seeds.len()
    );
    seeds
}

fn channel_named(name: &str) -> Channel {
    Channel::ALL
        .into_iter()
        .find(|c| c.as_str() == name)
        .unwrap_or_else(|| panic!("no channel {name}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn seed_corpus_decodes_as_named_and_never_panics() {
    let decoder = fuzz_body::decoder();
    for (name, bytes) in seeds() {
        let outcomes = catch_unwind(AssertUnwindSafe(|| fuzz_body::run(&decoder, &bytes)))
            .unwrap_or_else(|_| panic!("{name} panicked: {}", hex(&bytes)));
        // valid-<channel>-<schema>-<n>, bad-<channel>-<reason>-<n>
        let parts: Vec<&str> = name.split('-').collect();
        let expect = |channel: &str| {
            let index = Channel::ALL
                .iter()
                .position(|c| *c == channel_named(channel))
                .expect("a channel");
            outcomes[index]
        };
        match parts.as_slice() {
            ["valid", channel, _, _] => assert!(
                matches!(expect(channel), Outcome::Event { .. }),
                "{name}: {:?}",
                expect(channel)
            ),
            ["bad", channel, reason, _] => assert!(
                matches!(expect(channel), Outcome::Undecodable(got) if got == *reason),
                "{name}: {:?}",
                expect(channel)
            ),
            _ => {}
        }
    }
}

/// splitmix64: a small, seeded, dependency-free generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap_or(u64::MAX)).unwrap_or(0)
    }
}

/// Bytes that tend to reach edge cases in Avro: zig-zag longs, lengths and
/// union indexes at their limits.
const INTERESTING: [u8; 10] = [0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff, 0x3f, 0x40, 0xc0];

/// One to four random edits of `input`, with `other` for splicing.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let at = rng.below(len);
                data[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                data[at] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let at = rng.below(len + 1);
                data.insert(at, INTERESTING[rng.below(INTERESTING.len())]);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(8)).min(len);
                data.drain(at..end);
            }
            4 => data.truncate(rng.below(len + 1)),
            5 if len > 0 => {
                // A run of 0xff: a varint that never ends, or a huge length.
                let at = rng.below(len);
                let end = (at + 1 + rng.below(10)).min(len);
                data[at..end].fill(0xff);
            }
            6 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            7 if len > 5 => {
                // Keep the frame, point it at another schema id.
                data[1..5].copy_from_slice(&u32::try_from(rng.below(8)).unwrap_or(0).to_be_bytes());
            }
            _ => data.push(u8::try_from(rng.below(256)).unwrap_or(0)),
        }
    }
    data
}

#[test]
fn seeded_mutations_never_panic() {
    let decoder = fuzz_body::decoder();
    let seeds = seeds();
    let mut rng = Rng(MUTATION_SEED);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for iteration in 0..MUTATIONS {
        let (name, input) = &seeds[rng.below(seeds.len())];
        let (_, other) = &seeds[rng.below(seeds.len())];
        let data = mutate(&mut rng, input, other);
        let result = catch_unwind(AssertUnwindSafe(|| fuzz_body::run(&decoder, &data)));
        let Ok(run) = result else {
            panic!(
                "mutation {iteration} of {name} (seed {MUTATION_SEED:#x}) panicked; input: {}",
                hex(&data)
            );
        };
        for outcome in run {
            let key = match outcome {
                Outcome::Event { .. } => "event".to_owned(),
                Outcome::Rejected(reason) | Outcome::Undecodable(reason) => reason.to_owned(),
            };
            *outcomes.entry(key).or_default() += 1;
        }
    }
    // The mutations reach past the frame check into Avro and the normaliser.
    for reached in ["event", "truncated_avro", "unknown_schema"] {
        assert!(
            outcomes.contains_key(reached),
            "no mutation gave {reached}: {outcomes:?}"
        );
    }
    eprintln!("outcomes of {MUTATIONS} mutations x 4 channels: {outcomes:?}");
}

/// Rewrites the seed corpus from a small seeded load: three valid messages
/// per upstream schema version and one malformed message per kind and topic,
/// framed
/// with ids 1..=6 (the order of `upstream::ALL`, as the fuzz body's
/// registry), plus a few hand-made frames. Run it with
/// `cargo test -p touchline-tests --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "rewrites fuzz/corpus/decode_normalise; run by hand when the schemas change"]
fn write_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).expect("the corpus directory");
    for entry in std::fs::read_dir(&dir).expect("the corpus directory") {
        std::fs::remove_file(entry.expect("an entry").path()).expect("an old seed removed");
    }
    // 2026-01-01T00:00:00Z: a fixed start keeps the seeds the same.
    let mut scenario = Scenario::new(2026, 60, 1_767_225_600_000, 14);
    scenario.bad_rate = 0.05;
    let generated = generate(&scenario).expect("a valid scenario");
    let encoder = Encoder::new(&SchemaIds::sequential()).expect("the upstream schemas");
    let mut written: BTreeMap<String, usize> = BTreeMap::new();
    for message in &generated.messages {
        let (prefix, limit) = match &message.payload {
            Payload::Avro { schema, .. } => {
                (format!("valid-{}-{schema}", message.channel.as_str()), 3)
            }
            Payload::Bad(bad) => (
                format!("bad-{}-{}", message.channel.as_str(), bad.kind.reason()),
                1,
            ),
        };
        let count = written.entry(prefix.clone()).or_default();
        if *count >= limit {
            continue;
        }
        *count += 1;
        let bytes = encoder.encode(&message.payload).expect("encodes");
        std::fs::write(dir.join(format!("{prefix}-{count}")), bytes).expect("a seed written");
    }
    let hand_made: [(&str, &[u8]); 6] = [
        ("empty", b""),
        ("magic-only", &[0]),
        ("frame-without-body", &[0, 0, 0, 0, 1]),
        ("frame-unregistered-id", &[0, 0, 0, 0, 7, 2, 0x61]),
        ("frame-id-zero", &[0, 0, 0, 0, 0]),
        ("json-not-avro", br#"{"event_id":"e-1"}"#),
    ];
    for (name, bytes) in hand_made {
        std::fs::write(dir.join(format!("edge-{name}")), bytes).expect("a seed written");
    }
    eprintln!("seeds written: {written:?}");
}
