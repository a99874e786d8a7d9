//! Repository-level integration tests live beside this file, one flat file per
//! area (`compose.rs`, `timeline.rs`, ...). This library is what they share:
//! the local stack's addresses, names that keep each test's data apart, the
//! `touchline` binary, and ClickHouse read over plain HTTP (independently of
//! the client the pipeline uses).
//!
//! Tests that need servers talk to the real ones `scripts/stack up` starts;
//! `scripts/test` starts them and exports their addresses.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use touchline_model::Channel;

/// Addresses of the local stack, from the environment `scripts/stack env`
/// prints, with the stack's defaults.
#[derive(Debug, Clone)]
pub struct Stack {
    pub brokers: String,
    pub registry_url: String,
    pub clickhouse_url: String,
}

impl Stack {
    pub fn from_env() -> Stack {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
        Stack {
            brokers: var("TOUCHLINE_KAFKA_BROKERS", "127.0.0.1:9092"),
            registry_url: var("TOUCHLINE_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081"),
            clickhouse_url: var("TOUCHLINE_CLICKHOUSE_URL", "http://127.0.0.1:8123"),
        }
    }
}

/// One test's slice of the shared stack: its own topics (by prefix), its own
/// ClickHouse database and its own consumer group.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub stack: Stack,
    /// Prefix of this test's four source topics.
    pub prefix: String,
    pub database: String,
    pub group: String,
}

impl TestEnv {
    /// A fresh environment named after `test`.
    pub fn new(test: &str) -> TestEnv {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let unique = format!("{test}_{}_{}", std::process::id(), nanos % 1_000_000_000);
        TestEnv {
            stack: Stack::from_env(),
            prefix: format!("t.{unique}."),
            database: format!("t_{unique}"),
            group: format!("touchline-test-{unique}"),
        }
    }

    /// The name of `channel`'s source topic in this environment.
    pub fn topic(&self, channel: Channel) -> String {
        format!("{}{}", self.prefix, channel.source_topic())
    }

    /// Creates this environment's four source topics.
    pub async fn create_topics(&self, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.stack.brokers)
            .create()
            .expect("admin client");
        let names: Vec<String> = Channel::ALL.iter().map(|c| self.topic(*c)).collect();
        let topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(1)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = admin
            .create_topics(&topics, &options)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create topics on {}: {e}. Is the local stack up (`scripts/stack up`)?",
                    self.stack.brokers
                )
            });
        for result in results {
            if let Err((topic, code)) = result {
                panic!("cannot create topic {topic}: {code}");
            }
        }
    }

    /// Produces `generated` to this environment's topics.
    pub async fn produce(&self, generated: &touchline_loadgen::Generated) {
        let mut options =
            touchline_loadgen::ProduceOptions::new(&self.stack.brokers, &self.stack.registry_url);
        options.topic_prefix = self.prefix.clone();
        let report = touchline_loadgen::produce(generated, &options, |_| {})
            .await
            .expect("the load reaches Kafka");
        assert_eq!(report.produced, generated.messages.len());
    }

    /// The `touchline` binary, configured for this environment. Extra
    /// arguments follow the subcommand.
    pub fn touchline(&self, subcommand: &str) -> Command {
        let mut command = Command::new(touchline_binary());
        command
            .arg(subcommand)
            .env("TOUCHLINE_KAFKA_BROKERS", &self.stack.brokers)
            .env("TOUCHLINE_SCHEMA_REGISTRY_URL", &self.stack.registry_url)
            .env("TOUCHLINE_CLICKHOUSE_URL", &self.stack.clickhouse_url)
            .env("TOUCHLINE_CLICKHOUSE_DATABASE", &self.database)
            .env("TOUCHLINE_TOPIC_PREFIX", &self.prefix)
            .env("TOUCHLINE_GROUP_ID", &self.group)
            .env("TOUCHLINE_METRICS_ADDR", "127.0.0.1:0")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            );
        command
    }

    /// Runs `touchline <subcommand> <args>` to completion and returns its
    /// standard output; panics with its output if it fails.
    pub fn run_touchline(&self, subcommand: &str, args: &[&str]) -> String {
        let output = self
            .touchline(subcommand)
            .args(args)
            .output()
            .expect("touchline starts");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "touchline {subcommand} {args:?} failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Rows of `sql` (with `{db}` replaced by this database) as JSON objects.
    pub async fn query(&self, sql: &str) -> Vec<serde_json::Value> {
        let text = self.execute(&format!("{sql} FORMAT JSONEachRow")).await;
        text.lines()
            .map(|line| serde_json::from_str(line).expect("JSONEachRow line"))
            .collect()
    }

    /// Runs `sql` (with `{db}` replaced by this database); returns the body.
    pub async fn execute(&self, sql: &str) -> String {
        let sql = sql.replace("{db}", &self.database);
        let response = reqwest::Client::new()
            .post(&self.stack.clickhouse_url)
            .body(sql.clone())
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "ClickHouse at {} unreachable: {e}",
                    self.stack.clickhouse_url
                )
            });
        let status = response.status();
        let text = response.text().await.expect("ClickHouse answers");
        assert!(status.is_success(), "{sql}\n-> {status}: {text}");
        text
    }

    /// Drops this environment's database.
    pub async fn drop_database(&self) {
        self.execute("DROP DATABASE IF EXISTS {db}").await;
    }
}

/// The `touchline` binary: `TOUCHLINE_BIN`, else the workspace's debug build.
pub fn touchline_binary() -> PathBuf {
    let path = std::env::var_os("TOUCHLINE_BIN").map_or_else(
        || {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
                PathBuf::from,
            );
            target.join("debug/touchline")
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} does not exist: build it with `cargo build -p touchline` or set TOUCHLINE_BIN",
        path.display()
    );
    path
}

/// A JSON value that ClickHouse may quote (64-bit integers) as an i64.
pub fn as_i64(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
