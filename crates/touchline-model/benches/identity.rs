//! Identity resolution at scale, and the cost of normalising identifiers.
//!
//! ```text
//! cargo bench -p touchline-model --bench identity
//! TOUCHLINE_BENCH_IDS=1000000,10000000 cargo bench -p touchline-model --bench identity
//! ```
//!
//! First a table: for each size in `TOUCHLINE_BENCH_IDS` (identifiers,
//! default 1,000,000), a graph is built from synthetic events and timed.
//! Synthetic customers have 3-5 identifiers (70% with an account, then email,
//! phone, device, visitor, a second device); each customer's events link two
//! or three of its identifiers until they are connected, one more event
//! closes the ring, and 2% of events also carry another customer's device (a
//! shared household tablet), which merges customers and, between two
//! account holders, splits them again by nearness. Events are spread: round
//! `r` emits the `r`-th event of every customer, customers in a scrambled
//! order, so a customer's identifiers are not adjacent in memory. Every
//! 10,000 events the graph's changes are taken, as the stream processor
//! would per batch.
//!
//! Columns: seconds spent in `link` and in `take_changes` (making the
//! events is excluded); identifiers and events per second over their sum;
//! `heap_bytes() / len()`; peak resident memory of the process (VmHWM, reset
//! before each size) over identifiers; then 10,000 late events linking two
//! random customers' devices, applied to the full graph as one batch.
//!
//! Then divan's micro-benchmarks of normalisation (`identifiers`, phone and
//! email rules), which are the per-event cost in front of the graph.

use std::time::{Duration, Instant};

use touchline_model::identity::{customer_id, identifiers, Identifier, IdentityGraph};
use touchline_model::source::{ChatUser, ChatbotEvent, SourceRecord};

const BATCH: usize = 10_000;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then
    // this is a smoke test at a small size.
    let benching = std::env::args().any(|a| a == "--bench");
    let sizes = if benching {
        sizes_from_env()
    } else {
        vec![20_000]
    };
    println!(
        "| identifiers | links | events | changes | link s | take s | ids/s | events/s | heap B/id | peak RSS B/id | late events | changes | ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for size in sizes {
        run(size);
    }
    println!();
    divan::main();
}

fn sizes_from_env() -> Vec<usize> {
    let raw = std::env::var("TOUCHLINE_BENCH_IDS").unwrap_or_else(|_| "1000000".to_owned());
    raw.split(',')
        .filter_map(|s| s.trim().replace('_', "").parse().ok())
        .collect()
}

fn run(target_ids: usize) {
    reset_peak_rss();
    let world = World::new(target_ids);
    let mut graph = IdentityGraph::new();
    let mut spent = Spent::default();
    let mut events = 0;
    let mut batch = Vec::with_capacity(BATCH);
    for round in 0..World::ROUNDS {
        for i in 0..world.customers {
            let customer = world.scramble(i, round);
            if let Some(event) = world.event(customer, round) {
                batch.push(event);
            }
            if batch.len() == BATCH {
                spent.apply(&mut graph, &batch);
                events += batch.len();
                batch.clear();
            }
        }
    }
    spent.apply(&mut graph, &batch);
    events += batch.len();
    batch.clear();

    // Late events: 10,000 links between random customers' devices.
    let late: Vec<_> = (0..BATCH as u64)
        .map(|i| {
            let a = world.ids(mix(i, 7) as usize % world.customers);
            let b = world.ids(mix(i, 8) as usize % world.customers);
            vec![a[a.len() - 1].clone(), b[b.len() - 1].clone()]
        })
        .collect();
    let mut late_spent = Spent::default();
    late_spent.apply(&mut graph, &late);

    let ids = graph.len();
    let per_id = |bytes: usize| bytes as f64 / ids as f64;
    let seconds = (spent.link + spent.take).as_secs_f64();
    println!(
        "| {ids} | {} | {events} | {} | {:.2} | {:.2} | {:.0} | {:.0} | {:.1} | {} | {} | {} | {:.1} |",
        graph.links(),
        spent.changes,
        spent.link.as_secs_f64(),
        spent.take.as_secs_f64(),
        ids as f64 / seconds,
        events as f64 / seconds,
        per_id(graph.heap_bytes()),
        peak_rss_bytes().map_or("n/a".to_owned(), |b| format!("{:.1}", per_id(b))),
        late.len(),
        late_spent.changes,
        (late_spent.link + late_spent.take).as_secs_f64() * 1000.0,
    );
}

/// Time spent in the graph, and the changes it reported.
#[derive(Default)]
struct Spent {
    link: Duration,
    take: Duration,
    changes: usize,
}

impl Spent {
    /// Links a batch of events, then takes the changes.
    fn apply(&mut self, graph: &mut IdentityGraph, events: &[Vec<Identifier>]) {
        let started = Instant::now();
        for event in events {
            graph.link(event);
        }
        let linked = Instant::now();
        self.changes += graph.take_changes().len();
        self.link += linked - started;
        self.take += linked.elapsed();
    }
}

/// Synthetic customers, their identifiers and events; see the file docs.
struct World {
    customers: usize,
}

impl World {
    const ROUNDS: usize = 5;

    fn new(target_ids: usize) -> World {
        // 3 to 5 identifiers each, 4 on average.
        World {
            customers: (target_ids / 4).max(1),
        }
    }

    /// The `i`-th customer of round `round`: a bijection on customers.
    fn scramble(&self, i: usize, round: usize) -> usize {
        // 2654435761 is prime, so coprime with every smaller count.
        let n = self.customers as u64;
        ((i as u64 * 2_654_435_761 + round as u64 * 40_503) % n) as usize
    }

    fn ids(&self, c: usize) -> Vec<Identifier> {
        let h = mix(c as u64, 1);
        let count = 3 + (h % 3) as usize;
        let mut ids = Vec::with_capacity(6);
        if h % 10 < 7 {
            ids.extend(Identifier::account(&format!("AC{c:09}")));
        }
        let made = [
            Identifier::email(&format!("user{c}.{:x}@example.com", h >> 40)),
            Identifier::phone(&format!("+8210{:08}", (c as u64 * 7919) % 100_000_000)),
            Identifier::device(&uuid(c as u64, 2)),
            Identifier::visitor(&uuid(c as u64, 3)),
            Identifier::device(&uuid(c as u64, 4)),
        ];
        ids.extend(made.into_iter().flatten());
        ids.truncate(count);
        ids
    }

    /// Customer `c`'s event of round `round`, if it has one.
    fn event(&self, c: usize, round: usize) -> Option<Vec<Identifier>> {
        let ids = self.ids(c);
        let k = ids.len();
        if round >= k {
            return None;
        }
        let h = mix(c as u64, 10 + round as u64);
        let mut event = if round + 1 < k {
            vec![ids[round].clone(), ids[round + 1].clone()]
        } else {
            vec![ids[0].clone(), ids[k - 1].clone()]
        };
        if h % 10 < 3 {
            event.push(ids[(round + 2) % k].clone());
        }
        if h % 100 < 2 {
            let other = self.ids((h >> 8) as usize % self.customers);
            event.push(other[other.len() - 1].clone());
        }
        Some(event)
    }
}

fn uuid(n: u64, salt: u64) -> String {
    let (a, b) = (mix(n, salt), mix(n, salt + 100));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// SplitMix64 of `(n, salt)`: deterministic, no dependency.
fn mix(n: u64, salt: u64) -> u64 {
    let mut z = n
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(salt.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn reset_peak_rss() {
    // Linux: writing 5 resets VmHWM to the current RSS. Best effort.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

const PHONES: &[&str] = &[
    "010-1234-5678",
    "+82 10 1234 5678",
    "821012345678",
    "01012345678",
    "02-312-3456",
    "+1 650 253 0000",
    "010-1234",
    "anonymous",
];

#[divan::bench(args = PHONES)]
fn normalise_phone(raw: &str) -> bool {
    Identifier::phone(divan::black_box(raw)).is_ok()
}

#[divan::bench(args = ["minji.kim42@example.com", "  Minji.Kim42@Example.COM ", "a@@b.com"])]
fn normalise_email(raw: &str) -> bool {
    Identifier::email(divan::black_box(raw)).is_ok()
}

#[divan::bench]
fn identifiers_of_a_chatbot_event(bencher: divan::Bencher) {
    let record = SourceRecord::Chatbot(ChatbotEvent {
        event_id: "e-1".into(),
        conversation_id: "conv-1".into(),
        occurred_at: 0,
        event_type: "USER_MESSAGE".into(),
        visitor_id: uuid(1, 3),
        user: Some(ChatUser {
            account_id: Some(" AC1000296 ".into()),
            email: Some("Minji.Kim42@Example.com".into()),
            phone: Some("010-1234-5678".into()),
        }),
        surface: "WEB".into(),
        bot_version: "unknown".into(),
        ..Default::default()
    });
    bencher.bench(|| identifiers(divan::black_box(&record)));
}

#[divan::bench]
fn customer_id_of_an_anchor(bencher: divan::Bencher) {
    let anchor = Identifier::account("AC1000296");
    bencher.bench(|| anchor.as_ref().map(customer_id).ok());
}
