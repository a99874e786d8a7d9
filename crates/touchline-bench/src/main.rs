//! `touchline-bench`: the tools behind `scripts/bench`.
//!
//! - `create-topics`: the four source topics under a prefix, with a given
//!   number of partitions (an existing topic is left as it is).
//! - `count`: how many messages the four topics hold (high minus low
//!   watermark, summed over their partitions).
//! - `drain`: a bare consumer-group member that reads the four topics to the
//!   ends they had when it started and does nothing with the messages. It
//!   uses the pipeline's librdkafka settings ([`PIPELINE_CONSUMER_SETTINGS`]),
//!   so its rate is what the broker can give Touchline: the ceiling of the
//!   end-to-end figure. With `--timestamps` it also writes each message's
//!   position and broker timestamp, which `scripts/bench` joins with the
//!   timeline rows to measure latency.
//! - `batch-rate`: Touchline's steady drain rate from its debug logs (the
//!   `batch inserted` and `batches derived` lines of one or more instances),
//!   and how busy the machine was while the source messages drained and
//!   after, from samples of `/proc/stat`.
//! - `histogram`: quantiles of a Prometheus histogram scraped from
//!   `/metrics`, interpolated within buckets.
//!
//! Each command prints one JSON object on stdout.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Message, Timestamp};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use serde_json::json;
use touchline_model::Channel;

mod stats;

/// The librdkafka settings of Touchline's pipeline consumer
/// (`crates/touchline/src/pipeline.rs`, `Pipeline::new`), besides
/// `bootstrap.servers` and `group.id`. Keep the two in step: the bare
/// consumer's rate is only a ceiling for a consumer configured the same way.
pub const PIPELINE_CONSUMER_SETTINGS: &[(&str, &str)] = &[
    ("enable.auto.commit", "true"),
    ("auto.commit.interval.ms", "1000"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
    ("allow.auto.create.topics", "false"),
    ("session.timeout.ms", "10000"),
    ("heartbeat.interval.ms", "1000"),
    ("queued.max.messages.kbytes", "16384"),
    ("fetch.max.bytes", "16777216"),
    ("fetch.queue.backoff.ms", "10"),
];

#[derive(Debug, Parser)]
#[command(name = "touchline-bench", about = "Tools behind scripts/bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the four source topics under a prefix.
    CreateTopics {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Partitions of each topic.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Have the broker stamp each message with its append time
        /// (`message.timestamp.type=LogAppendTime`) instead of keeping the
        /// producer's create time.
        #[arg(long)]
        log_append_time: bool,
    },
    /// Print how many messages the four topics hold.
    Count {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Count these topics (names after the prefix) instead of the four
        /// source topics; a topic that does not exist counts as empty.
        #[arg(long = "topic")]
        topics: Vec<String>,
    },
    /// Read the four topics to their current ends as one group member, doing
    /// nothing with the messages.
    Drain(DrainArgs),
    /// Touchline's drain rate from the `batch inserted` and `batches
    /// derived` debug lines of its logs: messages after the first batch over
    /// the time from the first batch's confirmation to the last derive round.
    BatchRate {
        /// Log files (one per instance; read together).
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// Samples of the machine's CPU taken meanwhile, one per line:
        /// Unix seconds, then the first line of `/proc/stat`. Adds how busy
        /// the machine was while the source messages drained and after.
        #[arg(long)]
        cpu: Option<PathBuf>,
    },
    /// Quantiles of a histogram in a `/metrics` scrape, interpolated
    /// linearly within buckets; `--before` subtracts an earlier scrape.
    Histogram {
        /// The metric's name, without `_bucket`.
        #[arg(long)]
        metric: String,
        /// Comma-separated quantiles.
        #[arg(long, default_value = "0.5,0.99")]
        quantiles: String,
        /// An earlier scrape of the same process to subtract.
        #[arg(long)]
        before: Option<PathBuf>,
        /// The scrape.
        scrape: PathBuf,
    },
}

#[derive(Debug, Args)]
struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Prefix of the four source topic names.
    #[arg(long, default_value = "")]
    topic_prefix: String,
}

#[derive(Debug, Args)]
struct DrainArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Consumer group (use a fresh one to read from the start).
    #[arg(long)]
    group_id: String,
    /// Write `topic<TAB>partition<TAB>offset<TAB>timestamp_ms` of every
    /// message to this file.
    #[arg(long)]
    timestamps: Option<PathBuf>,
    /// Give up after this many seconds (the JSON then says
    /// `"complete": false`).
    #[arg(long, default_value_t = 900)]
    timeout_s: u64,
    /// Stop once the partitions assigned to this member are read to their
    /// ends (for runs of several members of one group).
    #[arg(long)]
    assigned_only: bool,
    /// Extra librdkafka setting, `NAME=VALUE` (repeatable).
    #[arg(long = "kafka-option", value_parser = parse_key_value)]
    kafka_options: Vec<(String, String)>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let output = runtime.block_on(async {
        match cli.command {
            Command::CreateTopics {
                kafka,
                partitions,
                log_append_time,
            } => create_topics(&kafka, partitions, log_append_time).await,
            Command::Count { kafka, topics } => count(&kafka, &topics),
            Command::Drain(args) => drain(args).await,
            Command::BatchRate { logs, cpu } => stats::batch_rate(&logs, cpu.as_deref()),
            Command::Histogram {
                metric,
                quantiles,
                before,
                scrape,
            } => stats::histogram(&metric, &quantiles, before.as_deref(), &scrape),
        }
    })?;
    println!("{output}");
    Ok(())
}

fn topics(prefix: &str) -> Vec<String> {
    Channel::ALL
        .iter()
        .map(|c| format!("{prefix}{}", c.source_topic()))
        .collect()
}

async fn create_topics(
    kafka: &KafkaArgs,
    partitions: i32,
    log_append_time: bool,
) -> anyhow::Result<serde_json::Value> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .create()
        .context("cannot create a Kafka admin client")?;
    let names = topics(&kafka.topic_prefix);
    let new: Vec<NewTopic> = names
        .iter()
        .map(|name| {
            let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
            if log_append_time {
                topic.set("message.timestamp.type", "LogAppendTime")
            } else {
                topic
            }
        })
        .collect();
    // A broker holding many topics (tansu on SQLite) can take most of a
    // minute to create more.
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(180)))
        .request_timeout(Some(Duration::from_secs(180)));
    let mut created = Vec::new();
    for result in admin.create_topics(&new, &options).await? {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("cannot create topic {name}: {code}"),
        }
    }
    Ok(json!({ "created": created, "partitions": partitions }))
}

/// High watermark (and low) of every partition of the four topics.
fn watermarks(
    consumer: &impl Consumer,
    prefix: &str,
) -> anyhow::Result<HashMap<(String, i32), (i64, i64)>> {
    watermarks_of(consumer, &topics(prefix))
}

/// High watermark (and low) of every partition of `names`.
fn watermarks_of(
    consumer: &impl Consumer,
    names: &[String],
) -> anyhow::Result<HashMap<(String, i32), (i64, i64)>> {
    let timeout = Duration::from_secs(30);
    let mut ends = HashMap::new();
    for topic in names {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .with_context(|| format!("cannot read the metadata of {topic}"))?;
        let Some(found) = metadata.topics().first() else {
            bail!("topic {topic} is missing");
        };
        if found.partitions().is_empty() {
            bail!("topic {topic} has no partitions (does it exist?)");
        }
        for partition in found.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition.id(), timeout)
                .with_context(|| format!("cannot read the watermarks of {topic}"))?;
            ends.insert((topic.clone(), partition.id()), (low, high));
        }
    }
    Ok(ends)
}

fn count(kafka: &KafkaArgs, only: &[String]) -> anyhow::Result<serde_json::Value> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .create()?;
    let ends = if only.is_empty() {
        watermarks(&consumer, &kafka.topic_prefix)?
    } else {
        let mut ends = HashMap::new();
        for name in only {
            let topic = format!("{}{name}", kafka.topic_prefix);
            // A missing topic (or one with no partitions) holds nothing.
            if let Ok(found) = watermarks_of(&consumer, std::slice::from_ref(&topic)) {
                ends.extend(found);
            }
        }
        ends
    };
    let messages: i64 = ends.values().map(|(low, high)| high - low).sum();
    Ok(json!({ "messages": messages, "partitions": ends.len() }))
}

async fn drain(args: DrainArgs) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.kafka.brokers)
        .set("group.id", &args.group_id);
    for (name, value) in PIPELINE_CONSUMER_SETTINGS {
        config.set(*name, *value);
    }
    for (name, value) in &args.kafka_options {
        config.set(name, value);
    }
    let consumer: StreamConsumer = config.create().context("cannot create the consumer")?;
    let ends = watermarks(&consumer, &args.kafka.topic_prefix)?;
    let names = topics(&args.kafka.topic_prefix);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    consumer.subscribe(&names)?;
    let mut timestamps = match &args.timestamps {
        Some(path) => {
            Some(BufWriter::new(File::create(path).with_context(|| {
                format!("cannot create {}", path.display())
            })?))
        }
        None => None,
    };
    // Next offset to read of each partition; a partition is done at its end.
    let mut next: HashMap<(String, i32), i64> = HashMap::new();
    let mut pending: usize = ends.iter().filter(|(_, (_, high))| *high > 0).count();
    let mut messages: u64 = 0;
    let mut log_append_times: u64 = 0;
    let mut bytes: u64 = 0;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout_s);
    let mut complete = pending == 0;
    let mut check_assignment = tokio::time::Instant::now() + Duration::from_secs(1);
    while !complete {
        let received = tokio::select! {
            received = consumer.recv() => received,
            () = tokio::time::sleep_until(check_assignment) => {
                check_assignment += Duration::from_secs(1);
                if args.assigned_only && assigned_done(&consumer, &ends, &next)? {
                    complete = true;
                }
                continue;
            }
            () = tokio::time::sleep_until(deadline) => break,
        };
        let message = match received {
            Ok(message) => message,
            Err(error) => {
                eprintln!("touchline-bench: Kafka error (librdkafka retries): {error}");
                continue;
            }
        };
        let now = Instant::now();
        first.get_or_insert(now);
        last = now;
        messages += 1;
        bytes += message.payload_len() as u64;
        if matches!(message.timestamp(), Timestamp::LogAppendTime(_)) {
            log_append_times += 1;
        }
        if let Some(out) = timestamps.as_mut() {
            writeln!(
                out,
                "{}\t{}\t{}\t{}",
                message.topic(),
                message.partition(),
                message.offset(),
                message.timestamp().to_millis().unwrap_or(0)
            )?;
        }
        let key = (message.topic().to_owned(), message.partition());
        let Some(&(_, high)) = ends.get(&key) else {
            continue;
        };
        let seen = next.entry(key).or_insert(0);
        let before = *seen;
        *seen = (*seen).max(message.offset() + 1);
        if before < high && *seen >= high {
            pending -= 1;
            if pending == 0 {
                complete = true;
            }
        }
    }
    if let Some(mut out) = timestamps {
        out.flush()?;
    }
    let wall = started.elapsed().as_secs_f64();
    let drain = first.map_or(0.0, |first| last.duration_since(first).as_secs_f64());
    #[allow(clippy::cast_precision_loss)]
    let rate = if drain > 0.0 {
        messages as f64 / drain
    } else {
        0.0
    };
    Ok(json!({
        "complete": complete,
        "messages": messages,
        "log_append_timestamps": log_append_times,
        "bytes": bytes,
        "drain_s": drain,
        "wall_s": wall,
        "first_s": first.map(|f| f.duration_since(started).as_secs_f64()),
        "messages_per_s": rate,
    }))
}

/// Whether every partition assigned to this member is read to its end.
fn assigned_done(
    consumer: &StreamConsumer,
    ends: &HashMap<(String, i32), (i64, i64)>,
    next: &HashMap<(String, i32), i64>,
) -> anyhow::Result<bool> {
    let assignment = consumer.assignment()?;
    if assignment.count() == 0 {
        return Ok(false);
    }
    Ok(assignment.elements().iter().all(|element| {
        let key = (element.topic().to_owned(), element.partition());
        let high = ends.get(&key).map_or(0, |(_, high)| *high);
        high == 0 || next.get(&key).copied().unwrap_or(0) >= high
    }))
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))
}
