//! Generates a scenario and prints what is in it, without producing anything.
//!
//! `cargo run -p touchline-loadgen --example summary -- [CUSTOMERS] [SEED] [DAYS]`;
//! with `TRUTH_OUT=FILE` it also writes the truth file.

use std::collections::BTreeMap;
use std::time::Instant;

use touchline_loadgen::{generate, Encoder, Payload, Scenario, SchemaIds};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let customers: usize = args.next().map_or(Ok(1_000), |a| a.parse())?;
    let seed: u64 = args.next().map_or(Ok(42), |a| a.parse())?;
    let days: u32 = args.next().map_or(Ok(14), |a| a.parse())?;
    // 2026-01-01T00:00:00Z: a fixed start keeps the output reproducible.
    let scenario = Scenario::new(seed, customers, 1_767_225_600_000, days);

    let started = Instant::now();
    let generated = generate(&scenario)?;
    let generate_time = started.elapsed();
    let encoder = Encoder::new(&SchemaIds::sequential())?;
    let started = Instant::now();
    let mut bytes = 0;
    for message in &generated.messages {
        bytes += encoder.encode(&message.payload)?.len();
    }
    let encode_time = started.elapsed();

    let truth = &generated.truth;
    println!("scenario: {scenario:?}");
    println!(
        "generated in {generate_time:?}, encoded in {encode_time:?}: {} messages, {bytes} bytes",
        generated.messages.len()
    );
    println!(
        "counts: events {} duplicates {} bad {}",
        truth.counts.events, truth.counts.duplicates, truth.counts.bad
    );
    for (topic, counts) in &truth.counts.by_topic {
        println!("  {topic}: {counts:?}");
    }
    let mut by_schema: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_kind: BTreeMap<(String, String), usize> = BTreeMap::new();
    for message in &generated.messages {
        if let Payload::Avro { schema, .. } = &message.payload {
            *by_schema.entry(schema).or_default() += 1;
        }
    }
    for event in &truth.events {
        *by_kind
            .entry((event.channel.to_string(), event.kind.clone()))
            .or_default() += 1;
    }
    println!("schemas: {by_schema:?}");
    for ((channel, kind), n) in by_kind {
        println!("  {channel:12} {kind:24} {n}");
    }
    let contacts: std::collections::BTreeSet<&str> = truth
        .events
        .iter()
        .filter_map(|e| e.contact_id.as_deref())
        .collect();
    println!("contacts: {}", contacts.len());
    println!(
        "customers: {}, households: {}",
        truth.customers.len(),
        truth.households.len()
    );
    println!("dead letters: {:?}", truth.dead_letter_counts());
    println!("hard cases: {:?}", truth.hard_cases.email_variants.first());
    println!("            {:?}", truth.hard_cases.phone_formats.first());
    println!(
        "            app clock over 10 min: {}, under: {}",
        truth.hard_cases.app_clock_over_10_min.len(),
        truth.hard_cases.app_clock_under_10_min.len()
    );
    if let Ok(path) = std::env::var("TRUTH_OUT") {
        truth.write_json(&path)?;
        println!("truth written to {path}");
    }
    Ok(())
}
