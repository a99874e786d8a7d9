//! The per-event hot path, stage by stage, on the load generator's messages:
//! frame parse, Avro decode (writer-to-reader resolution included), §2
//! normalisation, identifier extraction (§3 normal forms), and building the
//! timeline row. Each benchmark runs over the same mixed sample of all four
//! channels and every schema version; divan reports time and allocations per
//! call, i.e. per event.
//!
//! `cargo bench -p touchline-clickhouse --bench hot_path`
//!
//! The RowBinary encoding itself happens inside the `clickhouse` crate's
//! insert and is measured end to end, not here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use touchline_avro::decoder::DEFAULT_MAX_MESSAGE_BYTES;
use touchline_avro::{upstream, wire, Decoder, StaticRegistry};
use touchline_clickhouse::{SourcePosition, TimelineRow};
use touchline_loadgen::{generate, Encoder, Payload, Scenario, SchemaIds};
use touchline_model::identity::identifiers;
use touchline_model::identity::record::{identifiers_cached, PhoneCache};
use touchline_model::{normalise, Channel, SourceRecord};

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

/// 2026-03-01T00:00:00Z; the sample's events lie in the two weeks before.
const NOW_MS: i64 = 1_772_323_200_000;

struct Sample {
    framed: Vec<(Channel, Vec<u8>)>,
    records: Vec<SourceRecord>,
    decoder: Decoder<StaticRegistry>,
}

fn sample() -> &'static Sample {
    static SAMPLE: OnceLock<Sample> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let mut scenario = Scenario::new(7, 300, Scenario::start_ending_at(NOW_MS, 14), 14);
        scenario.duplicate_rate = 0.0;
        scenario.bad_rate = 0.0;
        let generated = generate(&scenario).expect("a valid scenario");
        let ids = SchemaIds::sequential();
        let encoder = Encoder::new(&ids).expect("schemas");
        let framed: Vec<(Channel, Vec<u8>)> = generated
            .messages
            .iter()
            .filter(|m| matches!(m.payload, Payload::Avro { .. }))
            .map(|m| (m.channel, encoder.encode(&m.payload).expect("encodes")))
            .collect();
        let registry =
            StaticRegistry::new((1..).zip(upstream::ALL.iter().map(|s| s.text.to_owned())));
        let decoder = Decoder::new(registry, DEFAULT_MAX_MESSAGE_BYTES);
        let records = framed
            .iter()
            .map(|(channel, bytes)| block_on(decoder.decode(*channel, bytes)).expect("decodes"))
            .collect();
        Sample {
            framed,
            records,
            decoder,
        }
    })
}

/// Drives a future that never waits (every schema is cached after the
/// sample's first pass).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}

fn main() {
    let sample = sample();
    eprintln!(
        "sample: {} messages of all four channels",
        sample.framed.len()
    );
    divan::main();
}

/// Where the benchmarked messages are said to come from.
fn position() -> SourcePosition {
    SourcePosition {
        topic: "cx.chatbot.events".into(),
        partition: 3,
        offset: 123_456,
    }
}

/// Cycles through `items`, one per benchmark input.
fn each<T: Sync>(items: &'static [T]) -> impl Fn() -> &'static T + Sync {
    let next = AtomicUsize::new(0);
    move || &items[next.fetch_add(1, Ordering::Relaxed) % items.len()]
}

#[divan::bench]
fn frame_parse(bencher: divan::Bencher) {
    let next = each(&sample().framed);
    bencher
        .with_inputs(&next)
        .bench_values(|(_, bytes)| wire::parse(bytes).map(|(id, body)| (id, body.len())));
}

#[divan::bench]
fn avro_decode(bencher: divan::Bencher) {
    let sample = sample();
    let next = each(&sample.framed);
    bencher
        .with_inputs(&next)
        .bench_values(|(channel, bytes)| block_on(sample.decoder.decode(*channel, bytes)));
}

#[divan::bench]
fn normalise_event(bencher: divan::Bencher) {
    let next = each(&sample().records);
    bencher
        .with_inputs(&next)
        .bench_values(|record| normalise(record, NOW_MS));
}

#[divan::bench]
fn extract_identifiers(bencher: divan::Bencher) {
    let next = each(&sample().records);
    bencher.with_inputs(&next).bench_values(identifiers);
}

/// As the pipeline does it: raw phone strings seen before are looked up, not
/// parsed again (the sample's few hundred customers repeat theirs).
#[divan::bench]
fn extract_identifiers_cached(bencher: divan::Bencher) {
    let next = each(&sample().records);
    let cache = std::sync::Mutex::new(PhoneCache::new(100_000));
    bencher.with_inputs(&next).bench_values(|record| {
        identifiers_cached(record, &mut cache.lock().expect("not poisoned"))
    });
}

#[divan::bench]
fn build_row(bencher: divan::Bencher) {
    let events: Vec<_> = sample()
        .records
        .iter()
        .map(|r| normalise(r, NOW_MS).expect("valid"))
        .collect();
    let events: &'static [_] = Box::leak(events.into_boxed_slice());
    let position = position();
    let next = each(events);
    bencher.with_inputs(&next).bench_values(|event| {
        TimelineRow::new(
            event,
            String::from("email:kim@example.com"),
            &position,
            NOW_MS * 1000,
        )
    });
}

/// Everything above in one call: bytes to row.
#[divan::bench]
fn bytes_to_row(bencher: divan::Bencher) {
    let sample = sample();
    let position = position();
    let next = each(&sample.framed);
    bencher.with_inputs(&next).bench_values(|(channel, bytes)| {
        let record = block_on(sample.decoder.decode(*channel, bytes)).expect("decodes");
        let event = normalise(&record, NOW_MS).expect("valid");
        let ids = identifiers(&record);
        let key = ids.first().map(|id| id.as_string()).unwrap_or_default();
        TimelineRow::new(&event, key, &position, NOW_MS * 1000)
    });
}

/// Bytes to row as the pipeline runs it: with the phone cache.
#[divan::bench]
fn bytes_to_row_cached(bencher: divan::Bencher) {
    let sample = sample();
    let position = position();
    let next = each(&sample.framed);
    let cache = std::sync::Mutex::new(PhoneCache::new(100_000));
    bencher.with_inputs(&next).bench_values(|(channel, bytes)| {
        let record = block_on(sample.decoder.decode(*channel, bytes)).expect("decodes");
        let event = normalise(&record, NOW_MS).expect("valid");
        let ids = identifiers_cached(&record, &mut cache.lock().expect("not poisoned"));
        let key = ids.first().map(|id| id.as_string()).unwrap_or_default();
        TimelineRow::new(&event, key, &position, NOW_MS * 1000)
    });
}
