//! Producing to a real broker and schema registry, then reading it back.
//!
//! Needs the local stack (`scripts/stack up`); the addresses come from
//! `TOUCHLINE_KAFKA_BROKERS` and `TOUCHLINE_SCHEMA_REGISTRY_URL`, as
//! `scripts/stack env` prints them, with the stack's defaults. Each test
//! produces to topics of its own (a fresh prefix), so that it neither sees nor
//! leaves messages in the topics the demo and other tests read.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use touchline_loadgen::{generate, produce, Encoder, LoadgenError, ProduceOptions, Scenario};
use touchline_model::Channel;

fn stack() -> (String, String) {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    (
        var("TOUCHLINE_KAFKA_BROKERS", "127.0.0.1:9092"),
        var("TOUCHLINE_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081"),
    )
}

/// Creates the four source topics under a fresh prefix and returns it.
async fn fresh_topics(brokers: &str, partitions: i32) -> String {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;

    let prefix = format!("loadgen-test-{}.", fresh_seed());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let names: Vec<String> = Channel::ALL
        .into_iter()
        .map(|c| format!("{prefix}{}", c.source_topic()))
        .collect();
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(1)))
        .collect();
    for result in admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .unwrap_or_else(|e| panic!("cannot create topics on {brokers} ({e}); is the local stack up (`scripts/stack up`)?"))
    {
        result.expect("topic created");
    }
    prefix
}

fn scenario(seed: u64) -> Scenario {
    Scenario {
        duplicate_rate: 0.05,
        bad_rate: 0.05,
        ..Scenario::new(seed, 30, 1_767_225_600_000, 3)
    }
}

fn consumer(brokers: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "touchline-loadgen-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// Every partition of the source topics with its end offset as the broker
/// reports it. tansu 0.6 can report an end behind the last message, so
/// reading from here may also return older messages; callers filter.
fn ends(consumer: &BaseConsumer, prefix: &str) -> Vec<(String, i32, i64)> {
    let timeout = Duration::from_secs(10);
    let mut ends = Vec::new();
    for channel in Channel::ALL {
        let topic = &format!("{prefix}{}", channel.source_topic());
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .expect("metadata");
        for partition in metadata.topics()[0].partitions() {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition.id(), timeout)
                .expect("watermarks");
            ends.push((topic.to_owned(), partition.id(), high));
        }
    }
    ends
}

type Record = (String, String, Vec<u8>);

/// Reads from the offsets in `from` until nothing new arrives for a while,
/// and returns how many times each of the `expected` records is stored: at
/// how many distinct (partition, offset) it was read. Records of earlier runs
/// are ignored, and so is reading one offset twice (tansu 0.6 serves the end
/// of a partition again now and then; the broker still holds it once).
fn read_back(
    consumer: &BaseConsumer,
    from: &[(String, i32, i64)],
    expected: &[Record],
) -> BTreeMap<Record, usize> {
    let mut assignment = TopicPartitionList::new();
    for (topic, partition, offset) in from {
        assignment
            .add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut seen: BTreeMap<Record, BTreeSet<(i32, i64)>> = expected
        .iter()
        .map(|r| (r.clone(), BTreeSet::new()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut idle_since = Instant::now();
    while Instant::now() < deadline && idle_since.elapsed() < Duration::from_secs(3) {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("consumed");
        let record = (
            message.topic().to_owned(),
            String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            message.payload().unwrap_or_default().to_vec(),
        );
        if let Some(offsets) = seen.get_mut(&record) {
            if offsets.insert((message.partition(), message.offset())) {
                idle_since = Instant::now();
            }
        }
    }
    seen.into_iter()
        .map(|(r, offsets)| (r, offsets.len()))
        .collect()
}

/// The records `messages` encode to on the topics of `prefix`, and how often
/// each occurs.
fn records(
    messages: &[touchline_loadgen::SourceMessage],
    encoder: &Encoder,
    prefix: &str,
) -> BTreeMap<Record, usize> {
    let mut counts = BTreeMap::new();
    for m in messages {
        let bytes = encoder.encode(&m.payload).expect("encodes");
        *counts
            .entry((format!("{prefix}{}", m.topic()), m.key.clone(), bytes))
            .or_insert(0) += 1;
    }
    counts
}

/// A seed of its own for each run, so that messages of earlier runs still on
/// the broker cannot be mistaken for this run's.
fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos % u128::from(u64::MAX)) as u64
}

#[tokio::test]
async fn produces_every_message_once_and_reads_back_the_same_bytes() {
    let (brokers, registry) = stack();
    let prefix = fresh_topics(&brokers, 4).await;
    let generated = generate(&scenario(fresh_seed())).expect("valid");
    let consumer = consumer(&brokers);
    let before = ends(&consumer, &prefix);
    let mut progress = Vec::new();
    let mut options = ProduceOptions::new(&brokers, &registry);
    options.topic_prefix = prefix.clone();
    let report = produce(&generated, &options, |p| {
        progress.push(p);
    })
    .await
    .expect("produces");
    assert_eq!(report.produced, generated.messages.len());
    assert!(!report.stopped_early);
    assert_eq!(
        progress.last().map(|p| p.acknowledged),
        Some(report.produced)
    );
    let truth_by_topic: BTreeMap<String, usize> = generated
        .truth
        .counts
        .by_topic
        .iter()
        .map(|(topic, counts)| (topic.clone(), counts.messages))
        .collect();
    assert_eq!(report.by_topic, truth_by_topic);

    let encoder = Encoder::new(&report.schema_ids).expect("schemas");
    let expected = records(&generated.messages, &encoder, &prefix);
    let keys: Vec<Record> = expected.keys().cloned().collect();
    let read = read_back(&consumer, &before, &keys);
    let wrong: Vec<(&String, &String, usize)> = read
        .iter()
        .filter(|(record, n)| expected.get(*record) != Some(n))
        .map(|((topic, key, _), n)| (topic, key, *n))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} records are stored a different number of times than generated, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
}

#[tokio::test]
async fn stops_after_the_duration_and_reports_an_exact_prefix() {
    let (brokers, registry) = stack();
    let topics = fresh_topics(&brokers, 4).await;
    let generated = generate(&scenario(fresh_seed())).expect("valid");
    let consumer = consumer(&brokers);
    let before = ends(&consumer, &topics);
    let options = ProduceOptions {
        rate_per_s: Some(200),
        duration: Some(Duration::from_secs(1)),
        topic_prefix: topics.clone(),
        ..ProduceOptions::new(&brokers, &registry)
    };
    let report = produce(&generated, &options, |_| {})
        .await
        .expect("produces");
    assert!(report.stopped_early);
    assert!(
        (150..=210).contains(&report.produced),
        "200 messages a second for a second: {}",
        report.produced
    );
    let prefix = generated.prefix(report.produced);
    assert_eq!(prefix.truth.counts.messages, report.produced);
    let encoder = Encoder::new(&report.schema_ids).expect("schemas");
    let expected = records(&prefix.messages, &encoder, &topics);
    let keys: Vec<Record> = records(&generated.messages, &encoder, &topics)
        .into_keys()
        .collect();
    let read = read_back(&consumer, &before, &keys);
    let read: BTreeMap<Record, usize> = read.into_iter().filter(|(_, n)| *n > 0).collect();
    assert!(
        read == expected,
        "the broker holds other messages than the prefix"
    );
}

#[tokio::test]
async fn unreachable_services_say_what_to_do() {
    let generated = generate(&scenario(103)).expect("valid");
    // Nothing listens on port 9 (discard) of localhost in the test setups.
    let options = ProduceOptions::new("127.0.0.1:9", "http://127.0.0.1:9");
    let error = produce(&generated, &options, |_| {})
        .await
        .expect_err("no registry");
    assert!(
        matches!(error, LoadgenError::RegistryUnreachable { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("scripts/stack up"), "{error}");
}

#[tokio::test]
async fn missing_topics_say_which() {
    let (brokers, registry) = stack();
    let prefix = format!("loadgen-missing-{}.", fresh_seed());
    let generated = generate(&scenario(7)).expect("valid");
    let mut options = ProduceOptions::new(&brokers, &registry);
    options.topic_prefix = prefix.clone();
    let missing = produce(&generated, &options, |_| {})
        .await
        .expect_err("the prefixed topics do not exist");
    assert!(
        matches!(missing, LoadgenError::MissingTopic { ref topic, .. } if topic.starts_with(&prefix)),
        "{missing}"
    );
}
