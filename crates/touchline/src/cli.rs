//! Commands and their settings. Every setting is a flag and an environment
//! variable (`TOUCHLINE_*`), with the default that suits the local stack.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;
use touchline_avro::registry::BasicAuth;
use touchline_avro::{Decoder, HttpRegistry};
use touchline_clickhouse::{migrate, summary, ClickHouseConfig, Warehouse};

use std::sync::Arc;

use rdkafka::ClientConfig;

use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, PipelineConfig};

/// Touchline: one customer timeline and omnichannel-consistency metrics from
/// the chatbot, app, social and call-center event streams.
///
/// Typical use: `touchline migrate` once, then `touchline run` on as many
/// instances as the topics have partitions. Every flag can also be set through
/// the environment variable shown with it.
#[derive(Debug, Parser)]
#[command(name = "touchline", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade Touchline's database, tables and views in ClickHouse (idempotent).
    Migrate {
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
    },
    /// Consume the four source topics into ClickHouse, as one member of the consumer group.
    Run(Box<RunArgs>),
    /// Produce a seeded demo load to the four topics and write its ground truth.
    Generate(Box<GenerateArgs>),
    /// Print what has reached the timeline, per channel, and the dead letters by reason.
    Summary {
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
    },
}

#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated.
    #[arg(
        long,
        env = "TOUCHLINE_KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,
    /// Prefix of the four source topic names (`<prefix>cx.chatbot.events`, ...),
    /// for environments sharing a broker.
    #[arg(long, env = "TOUCHLINE_TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,
    /// Extra librdkafka setting as KEY=VALUE (repeatable), e.g.
    /// `security.protocol=SASL_SSL`.
    #[arg(long = "kafka-option", value_parser = parse_key_value)]
    pub kafka_options: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Confluent-compatible schema registry.
    #[arg(
        long = "schema-registry-url",
        env = "TOUCHLINE_SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub registry_url: String,
    /// Basic-auth user for the registry, if it needs one.
    #[arg(long = "schema-registry-user", env = "TOUCHLINE_SCHEMA_REGISTRY_USER")]
    pub registry_user: Option<String>,
    /// Basic-auth password for the registry.
    #[arg(
        long = "schema-registry-password",
        env = "TOUCHLINE_SCHEMA_REGISTRY_PASSWORD",
        hide_env_values = true
    )]
    pub registry_password: Option<String>,
}

impl KafkaArgs {
    /// Connection settings shared by every Kafka client of the process.
    pub fn client(&self) -> ClientConfig {
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", &self.brokers);
        for (key, value) in &self.kafka_options {
            client.set(key, value);
        }
        client
    }
}

impl RegistryArgs {
    pub fn client(&self) -> anyhow::Result<HttpRegistry> {
        let auth = self.registry_user.as_ref().map(|user| BasicAuth {
            username: user.clone(),
            password: self.registry_password.clone().unwrap_or_default(),
        });
        HttpRegistry::new(&self.registry_url, auth)
            .context("cannot set up the schema registry client")
    }
}

#[derive(Debug, Args)]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP interface.
    #[arg(
        long = "clickhouse-url",
        env = "TOUCHLINE_CLICKHOUSE_URL",
        default_value = "http://127.0.0.1:8123"
    )]
    pub clickhouse_url: String,
    /// Database holding Touchline's tables and the views dashboards read.
    #[arg(
        long = "clickhouse-database",
        env = "TOUCHLINE_CLICKHOUSE_DATABASE",
        default_value = "cx"
    )]
    pub clickhouse_database: String,
    /// ClickHouse user.
    #[arg(
        long = "clickhouse-user",
        env = "TOUCHLINE_CLICKHOUSE_USER",
        default_value = "default"
    )]
    pub clickhouse_user: String,
    /// ClickHouse password.
    #[arg(
        long = "clickhouse-password",
        env = "TOUCHLINE_CLICKHOUSE_PASSWORD",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub clickhouse_password: String,
}

impl ClickHouseArgs {
    pub async fn connect(&self) -> anyhow::Result<Warehouse> {
        let config = ClickHouseConfig {
            url: self.clickhouse_url.clone(),
            database: self.clickhouse_database.clone(),
            user: self.clickhouse_user.clone(),
            password: self.clickhouse_password.clone(),
        };
        Warehouse::connect(&config).await.with_context(|| {
            format!(
                "cannot reach ClickHouse at {}; is it running (`scripts/stack up`)?",
                self.clickhouse_url
            )
        })
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
    /// Consumer group; run several instances with one group to share partitions.
    #[arg(long, env = "TOUCHLINE_GROUP_ID", default_value = "touchline")]
    pub group_id: String,
    /// Flush a batch at this many messages.
    #[arg(long, env = "TOUCHLINE_BATCH_MAX_MESSAGES", default_value_t = 20_000)]
    pub batch_max_messages: usize,
    /// Flush a batch at the latest this many milliseconds after it started.
    #[arg(long, env = "TOUCHLINE_BATCH_LINGER_MS", default_value_t = 500)]
    pub batch_linger_ms: u64,
    /// Messages larger than this go to the dead-letter table.
    #[arg(long, env = "TOUCHLINE_MAX_MESSAGE_BYTES", default_value_t = touchline_avro::decoder::DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
    /// Address serving Prometheus `/metrics` and `/healthz`.
    #[arg(long, env = "TOUCHLINE_METRICS_ADDR", default_value = "0.0.0.0:9464")]
    pub metrics_addr: SocketAddr,
    /// Exit once every assigned partition has been read to its end (for
    /// batch jobs, demos and tests).
    #[arg(long)]
    pub until_caught_up: bool,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Simulated customers; each lives through one or more cross-channel journeys.
    #[arg(long, default_value_t = 1000)]
    pub customers: usize,
    /// Seed: the same seed gives the same events, byte for byte.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days of history to simulate.
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    /// First simulated day as Unix milliseconds (default: so that the history
    /// ends now).
    #[arg(long)]
    pub start_ms: Option<i64>,
    /// Share of messages delivered twice.
    #[arg(long, default_value_t = 0.02)]
    pub duplicate_rate: f64,
    /// Share of extra malformed messages (they must end as dead letters).
    #[arg(long, default_value_t = 0.005)]
    pub bad_rate: f64,
    /// Messages per second (default: as fast as the broker takes them).
    #[arg(long)]
    pub rate: Option<u32>,
    /// Stop producing after this many seconds; the truth covers what was produced.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Where to write the ground truth (JSON) of what was produced.
    #[arg(long)]
    pub truth: Option<std::path::PathBuf>,
}

impl Command {
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Migrate { clickhouse } => {
                let warehouse = clickhouse.connect().await?;
                let applied = migrate::migrate(&warehouse).await?;
                if applied.is_empty() {
                    println!(
                        "ClickHouse database `{}` is up to date",
                        warehouse.database()
                    );
                } else {
                    println!(
                        "applied {} migration(s) to `{}`: {}",
                        applied.len(),
                        warehouse.database(),
                        applied.join(", ")
                    );
                }
                Ok(())
            }
            Command::Run(args) => run(*args).await,
            Command::Generate(args) => generate(*args).await,
            Command::Summary { clickhouse } => print_summary(&clickhouse.connect().await?).await,
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let warehouse = args.clickhouse.connect().await?;
    migrate::check(&warehouse).await?;
    let metrics = Metrics::new()?;
    let server = tokio::spawn(metrics.clone().serve(args.metrics_addr));
    let decoder = Decoder::new(args.registry.client()?, args.max_message_bytes);
    let client = args.kafka.client();
    let identity = Identity::new(&client, &args.kafka.topic_prefix, metrics.clone()).await?;
    let shutdown = shutdown_signal();
    let (stop_follower, follower_stop) = watch::channel(false);
    let follower = tokio::spawn(Arc::clone(&identity).follow(
        client.clone(),
        warehouse.clone(),
        follower_stop,
    ));
    let config = PipelineConfig {
        group_id: args.group_id,
        topic_prefix: args.kafka.topic_prefix,
        batch_max_messages: args.batch_max_messages.max(1),
        batch_linger: Duration::from_millis(args.batch_linger_ms),
        until_caught_up: args.until_caught_up,
    };
    let pipeline = Pipeline::new(config, &client, decoder, warehouse, identity, metrics)?;
    let totals = pipeline.run(shutdown).await;
    let _ = stop_follower.send(true);
    let followed = follower.await.context("the identity follower panicked")?;
    server.abort();
    let totals = totals?;
    followed?;
    println!(
        "consumed {} messages: {} timeline rows, {} dead letters",
        totals.messages, totals.events, totals.dead_letters
    );
    Ok(())
}

async fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    use touchline_loadgen::{ProduceOptions, Scenario};

    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut scenario = Scenario::new(
        args.seed,
        args.customers,
        args.start_ms
            .unwrap_or_else(|| Scenario::start_ending_at(now_ms, args.days)),
        args.days,
    );
    scenario.duplicate_rate = args.duplicate_rate;
    scenario.bad_rate = args.bad_rate;
    let generated = touchline_loadgen::generate(&scenario)?;
    let counts = &generated.truth.counts;
    eprintln!(
        "generated {} messages: {} distinct events, {} redeliveries, {} malformed",
        counts.messages, counts.events, counts.duplicates, counts.bad
    );
    let mut options = ProduceOptions::new(&args.kafka.brokers, &args.registry.registry_url);
    options.topic_prefix = args.kafka.topic_prefix;
    options.rate_per_s = args.rate;
    options.duration = args.duration.map(Duration::from_secs);
    let mut progress = crate::progress::Bar::new("producing", counts.messages as u64);
    let report = touchline_loadgen::produce(&generated, &options, |p| {
        progress.update(p.acknowledged as u64);
    })
    .await?;
    progress.finish();
    println!(
        "produced {} of {} messages in {:.1} s{}",
        report.produced,
        report.total,
        report.elapsed.as_secs_f64(),
        if report.stopped_early {
            " (stopped at --duration)"
        } else {
            ""
        }
    );
    if let Some(path) = args.truth {
        generated.prefix(report.produced).truth.write_json(&path)?;
        println!("ground truth written to {}", path.display());
    }
    Ok(())
}

/// Turns true on SIGINT or SIGTERM.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    tokio::spawn(async move {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = interrupt => {}
            () = terminate => {}
        }
        tracing::info!("shutting down: flushing and committing");
        let _ = sender.send(true);
    });
    receiver
}

async fn print_summary(warehouse: &Warehouse) -> anyhow::Result<()> {
    let channels = summary::channels(warehouse).await?;
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>8} {:>7}  {:<10} {:<10}",
        "channel", "events", "customers", "contacts", "csat_n", "csat_%", "first day", "last day"
    );
    for row in &channels {
        let csat = row
            .csat_percent()
            .map_or_else(|| "-".to_owned(), |p| format!("{p:.1}"));
        println!(
            "{:<12} {:>10} {:>10} {:>10} {:>8} {:>7}  {:<10} {:<10}",
            row.channel,
            row.events,
            row.customers,
            row.contacts,
            row.csat_responses,
            csat,
            day(row.first_event_ms),
            day(row.last_event_ms)
        );
    }
    let total: u64 = channels.iter().map(|r| r.events).sum();
    println!("{:<12} {:>10}", "all", total);
    let dead = summary::dead_letters(warehouse).await?;
    if dead.is_empty() {
        println!("dead letters: none");
    } else {
        let listed: Vec<String> = dead
            .iter()
            .map(|d| format!("{} {}", d.reason, d.messages))
            .collect();
        println!("dead letters: {}", listed.join(", "));
    }
    Ok(())
}

/// `YYYY-MM-DD` of a millisecond timestamp, UTC.
fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| "-".to_owned(), |t| t.format("%Y-%m-%d").to_string())
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn kafka_options_are_key_value_pairs() {
        assert_eq!(
            parse_key_value("security.protocol = SASL_SSL"),
            Ok(("security.protocol".into(), "SASL_SSL".into()))
        );
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }
}
