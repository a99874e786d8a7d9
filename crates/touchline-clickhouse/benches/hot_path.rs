//! The per-event hot path, stage by stage, on the load generator's messages:
//! frame parse, Avro decode (writer-to-reader resolution included), §2
//! normalisation, identifier extraction (§3 normal forms) and the stored
//! (pseudonymised) identity key, building the timeline row and the derive
//! stage's per-event rows (contact fact, score), and the RowBinary encoding
//! of rows by the `clickhouse` crate's insert. Each benchmark runs over the
//! same mixed sample of all four channels and every schema version; divan
//! reports time and allocations per call, i.e. per event, except for the
//! `encode_*` benchmarks, which insert 1,000 rows per call (divan's
//! throughput column is rows per second; divide time and allocations by
//! 1,000 for one row).
//!
//! `cargo bench -p touchline-clickhouse --bench hot_path`
//!
//! The encoding benchmarks send the rows, as the pipeline does against
//! ClickHouse 18.16 (RowBinary, uncompressed), to a local HTTP endpoint that
//! reads and discards them: what is measured is the client's work, not
//! ClickHouse's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use clickhouse::{Client, Compression};
use touchline_avro::decoder::DEFAULT_MAX_MESSAGE_BYTES;
use touchline_avro::{upstream, wire, Decoder, StaticRegistry};
use touchline_clickhouse::derived::{ContactFactRow, ScoreRow};
use touchline_clickhouse::{SourcePosition, Table, TimelineRow};
use touchline_loadgen::{generate, Encoder, Payload, Scenario, SchemaIds};
use touchline_model::contact::{contact_fact, ContactKey};
use touchline_model::identity::identifiers;
use touchline_model::identity::record::{identifiers_cached, PhoneCache};
use touchline_model::identity::Identifier;
use touchline_model::{normalise, Channel, Pseudonymiser, SourceRecord, UnifiedEvent};

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

/// 2026-03-01T00:00:00Z; the sample's events lie in the two weeks before.
const NOW_MS: i64 = 1_772_323_200_000;

/// A pseudonymisation key for the benchmarks (production runs keyed).
const KEY: &[u8] = b"touchline-bench-key-0123456789abcdef";

/// Rows per call of the `encode_*` benchmarks.
const ENCODE_ROWS: usize = 1000;

struct Sample {
    framed: Vec<(Channel, Vec<u8>)>,
    records: Vec<SourceRecord>,
    /// Each record's normalised event and identifiers.
    events: Vec<(UnifiedEvent, Vec<Identifier>)>,
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
        let records: Vec<SourceRecord> = framed
            .iter()
            .map(|(channel, bytes)| decoder.decode_now(*channel, bytes).expect("decodes"))
            .collect();
        let events = records
            .iter()
            .map(|r| (normalise(r, NOW_MS).expect("valid"), identifiers(r)))
            .collect();
        Sample {
            framed,
            records,
            events,
            decoder,
        }
    })
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
        .bench_values(|(channel, bytes)| sample.decoder.decode_now(*channel, bytes));
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

/// The identity key as it is stored: the first identifier's keyed
/// HMAC-SHA256 form (pseudonymisation on, as in production).
#[divan::bench]
fn identity_key_pseudonymised(bencher: divan::Bencher) {
    let next = each(&sample().events);
    let pseudonymiser = Pseudonymiser::keyed(KEY).expect("a long enough key");
    bencher.with_inputs(&next).bench_values(|(_, ids)| {
        ids.first()
            .map(|id| pseudonymiser.stored(id))
            .unwrap_or_default()
    });
}

#[divan::bench]
fn build_row(bencher: divan::Bencher) {
    let position = position();
    let next = each(&sample().events);
    bencher.with_inputs(&next).bench_values(|(event, _)| {
        TimelineRow::new(
            event,
            String::from("email:kim@example.com"),
            &position,
            NOW_MS * 1000,
        )
    });
}

/// The derive stage's per-event rows: the event's contact fact (for events
/// of a contact) and its score row (for scored events).
#[divan::bench]
fn build_derive_rows(bencher: divan::Bencher) {
    let sample = sample();
    let inputs: Vec<(&SourceRecord, &(UnifiedEvent, Vec<Identifier>))> =
        sample.records.iter().zip(&sample.events).collect();
    let inputs: &'static [_] = Box::leak(inputs.into_boxed_slice());
    let next = each(inputs);
    let key = "email:0123456789abcdef0123456789abcdef";
    bencher
        .with_inputs(&next)
        .bench_values(|(record, (event, ids))| {
            let contact_key = ids.first().map(|id| ContactKey {
                kind: id.kind(),
                stored: key.to_owned(),
            });
            let fact = contact_fact(record, event, contact_key)
                .map(|fact| ContactFactRow::new(&fact, NOW_MS as u64 * 1000));
            let score = ScoreRow::of(event, key, NOW_MS as u64 * 1000);
            (fact, score)
        });
}

/// Everything above in one call: bytes to row.
#[divan::bench]
fn bytes_to_row(bencher: divan::Bencher) {
    let sample = sample();
    let position = position();
    let next = each(&sample.framed);
    bencher.with_inputs(&next).bench_values(|(channel, bytes)| {
        let record = sample.decoder.decode_now(*channel, bytes).expect("decodes");
        let event = normalise(&record, NOW_MS).expect("valid");
        let ids = identifiers(&record);
        let key = ids.first().map(|id| id.as_string()).unwrap_or_default();
        TimelineRow::new(&event, key, &position, NOW_MS * 1000)
    });
}

/// Bytes to rows as the pipeline runs it in production: the phone cache,
/// the pseudonymised identity key, the timeline row and the derive rows.
#[divan::bench]
fn bytes_to_rows_pipeline(bencher: divan::Bencher) {
    let sample = sample();
    let position = position();
    let next = each(&sample.framed);
    let cache = std::sync::Mutex::new(PhoneCache::new(100_000));
    let pseudonymiser = Pseudonymiser::keyed(KEY).expect("a long enough key");
    bencher.with_inputs(&next).bench_values(|(channel, bytes)| {
        let record = sample.decoder.decode_now(*channel, bytes).expect("decodes");
        let event = normalise(&record, NOW_MS).expect("valid");
        let ids = identifiers_cached(&record, &mut cache.lock().expect("not poisoned"));
        let key = ids
            .first()
            .map(|id| pseudonymiser.stored(id))
            .unwrap_or_default();
        let contact_key = ids.first().map(|id| ContactKey {
            kind: id.kind(),
            stored: key.clone(),
        });
        let fact = contact_fact(&record, &event, contact_key)
            .map(|fact| ContactFactRow::new(&fact, NOW_MS as u64 * 1000));
        let score = ScoreRow::of(&event, &key, NOW_MS as u64 * 1000);
        let row = TimelineRow::new(&event, key, &position, NOW_MS * 1000);
        (row, fact, score)
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
        let record = sample.decoder.decode_now(*channel, bytes).expect("decodes");
        let event = normalise(&record, NOW_MS).expect("valid");
        let ids = identifiers_cached(&record, &mut cache.lock().expect("not poisoned"));
        let key = ids.first().map(|id| id.as_string()).unwrap_or_default();
        TimelineRow::new(&event, key, &position, NOW_MS * 1000)
    });
}

/// A local HTTP endpoint that reads every request to its end and answers
/// 200 with an empty body: the rows' bytes go nowhere.
fn discard_server() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || discard(stream));
            }
        });
        url
    })
}

/// Serves one keep-alive connection: each request's headers, then its body
/// (chunked or with a length), then an empty 200 answer.
fn discard(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().expect("a socket"));
    let mut writer = stream;
    let mut line = String::new();
    loop {
        let (mut chunked, mut length) = (false, 0usize);
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end().to_ascii_lowercase();
            if header.is_empty() {
                break;
            }
            if header == "transfer-encoding: chunked" {
                chunked = true;
            } else if let Some(n) = header.strip_prefix("content-length: ") {
                length = n.parse().unwrap_or(0);
            }
        }
        let mut sink = std::io::sink();
        if chunked {
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
                // The chunk and its CRLF.
                let copied = std::io::copy(&mut (&mut reader).take(size as u64 + 2), &mut sink);
                if size == 0 || copied.is_err() {
                    break;
                }
            }
        } else if std::io::copy(&mut (&mut reader).take(length as u64), &mut sink).is_err() {
            return;
        }
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// Inserts `rows` as the pipeline does against ClickHouse 18.16 (no row
/// validation, uncompressed RowBinary).
fn encode<T: Table>(bencher: divan::Bencher, rows: &'static [T]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let client = Client::default()
        .with_url(discard_server())
        .with_validation(false)
        .with_compression(Compression::None);
    bencher
        .counter(divan::counter::ItemsCount::new(rows.len()))
        .bench_local(|| {
            runtime.block_on(async {
                let mut insert = client
                    .insert::<T>(<T as Table>::NAME)
                    .await
                    .expect("an insert");
                for row in rows {
                    insert.write(row).await.expect("written");
                }
                insert.end().await.expect("ended");
            });
        });
}

/// `ENCODE_ROWS` rows built by `row`, cycling through the sample.
fn rows_of<T>(
    row: impl Fn(&SourceRecord, &UnifiedEvent, &[Identifier]) -> Option<T>,
) -> &'static [T] {
    let sample = sample();
    let rows: Vec<T> = sample
        .records
        .iter()
        .zip(&sample.events)
        .cycle()
        .filter_map(|(record, (event, ids))| row(record, event, ids))
        .take(ENCODE_ROWS)
        .collect();
    Box::leak(rows.into_boxed_slice())
}

const STORED_KEY: &str = "email:0123456789abcdef0123456789abcdef";

#[divan::bench]
fn encode_timeline_rows(bencher: divan::Bencher) {
    let position = position();
    encode(
        bencher,
        rows_of(|_, event, _| {
            Some(TimelineRow::new(
                event,
                STORED_KEY.to_owned(),
                &position,
                NOW_MS * 1000,
            ))
        }),
    );
}

#[divan::bench]
fn encode_contact_fact_rows(bencher: divan::Bencher) {
    encode(
        bencher,
        rows_of(|record, event, ids| {
            let key = ids.first().map(|id| ContactKey {
                kind: id.kind(),
                stored: STORED_KEY.to_owned(),
            });
            contact_fact(record, event, key).map(|f| ContactFactRow::new(&f, NOW_MS as u64 * 1000))
        }),
    );
}

#[divan::bench]
fn encode_score_rows(bencher: divan::Bencher) {
    encode(
        bencher,
        rows_of(|_, event, _| ScoreRow::of(event, STORED_KEY, NOW_MS as u64 * 1000)),
    );
}
