//! Repository-level integration tests live beside this file, one flat file per
//! area (`compose.rs`, `timeline.rs`, ...). This library is what they share:
//! the local stack's addresses, names that keep each test's data apart, the
//! `touchline` binary, ClickHouse read over plain HTTP (independently of
//! the client the pipeline uses), every view of a run read in full to
//! compare it with another run's, and `touchline run` in the background.
//!
//! Tests that need servers talk to the real ones `scripts/stack up` starts;
//! `scripts/test` starts them and exports their addresses.

pub mod metrics_oracle;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use touchline_loadgen::truth::{GroundTruth, TruthEvent};
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
        String::from_utf8_lossy(&self.query_bytes(sql).await).into_owned()
    }

    /// Runs `sql` (with `{db}` replaced by this database); returns the body
    /// as bytes (dead-letter payloads need not be UTF-8).
    pub async fn query_bytes(&self, sql: &str) -> Vec<u8> {
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
        let body = response.bytes().await.expect("ClickHouse answers").to_vec();
        assert!(
            status.is_success(),
            "{sql}\n-> {status}: {}",
            String::from_utf8_lossy(&body)
        );
        body
    }

    /// Every `v_*` view of this database (and `dead_letters`, if `dump`
    /// says so) in full, whatever views the migrations define: what two
    /// runs of the same events must agree on.
    pub async fn views(&self, dump: ViewDump) -> Views {
        let dead_letters = if dump.dead_letters {
            " OR name = 'dead_letters'"
        } else {
            ""
        };
        let names = self
            .query(&format!(
                "SELECT name FROM system.tables WHERE database = '{{db}}' \
                 AND (name LIKE 'v\\\\_%'{dead_letters})"
            ))
            .await;
        let text = |value: &str| {
            format!(
                "replaceRegexpAll(replaceAll({value}, '{}', ''), \
                 'processing time [0-9]+', 'processing time <now>')",
                self.prefix
            )
        };
        let mut views = Views::new();
        for name in names {
            let name = name["name"].as_str().expect("a view name").to_owned();
            let columns = self
                .query(&format!(
                    "SELECT name, type FROM system.columns WHERE database = '{{db}}' \
                     AND table = '{name}'"
                ))
                .await;
            let expressions: Vec<String> = columns
                .iter()
                .filter_map(|column| {
                    let column_name = column["name"].as_str().expect("a column name");
                    let quoted = format!("`{column_name}`");
                    if !dump.mask_run {
                        return Some(quoted);
                    }
                    match column["type"].as_str().expect("a column type") {
                        _ if PROCESSING_TIME_COLUMNS.contains(&column_name) => None,
                        "String" | "Nullable(String)" => Some(text(&quoted)),
                        "Array(String)" => Some(format!("arrayMap(x -> {}, {quoted})", text("x"))),
                        _ => Some(quoted),
                    }
                })
                .collect();
            let body = self
                .query_bytes(&format!(
                    "SELECT {} FROM {{db}}.{name} FORMAT TabSeparated",
                    expressions.join(", ")
                ))
                .await;
            let mut rows: Vec<Vec<u8>> = body
                .split(|b| *b == b'\n')
                .filter(|line| !line.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            rows.sort_unstable();
            views.insert(name, rows);
        }
        views
    }

    /// Drops this environment's database.
    pub async fn drop_database(&self) {
        self.execute("DROP DATABASE IF EXISTS {db}").await;
    }
}

/// Columns that record when Touchline processed a row, not what the row says:
/// they differ between any two runs.
pub const PROCESSING_TIME_COLUMNS: [&str; 3] = ["received_at", "ingested_at", "updated_at"];

/// Views by name, each with its rows, one TSV line each (the raw bytes
/// ClickHouse sent), sorted: [`TestEnv::views`].
pub type Views = BTreeMap<String, Vec<Vec<u8>>>;

/// What [`TestEnv::views`] reads.
#[derive(Debug, Clone, Copy)]
pub struct ViewDump {
    /// `dead_letters` too, besides the `v_*` views.
    pub dead_letters: bool,
    /// Leave out what differs between two runs of the same events: the
    /// [`PROCESSING_TIME_COLUMNS`], the environment's topic prefix in
    /// strings, and the processing time a `timestamp_out_of_range` error
    /// quotes (read as `<now>`). Otherwise every column is read as stored.
    pub mask_run: bool,
}

/// `Ok(rows per view)` when `actual` holds exactly the views and rows of
/// `expected` (read from `expected_run`), else what differs, with a few
/// missing and unexpected rows of each view.
pub fn compare_views(
    expected: &Views,
    actual: &Views,
    expected_run: &str,
) -> Result<Vec<(String, usize)>, String> {
    let names = |views: &Views| views.keys().cloned().collect::<Vec<_>>();
    if names(expected) != names(actual) {
        return Err(format!(
            "different views: {:?} in {expected_run}, {:?} here",
            names(expected),
            names(actual)
        ));
    }
    let show = |row: &[u8]| {
        let text = String::from_utf8_lossy(row);
        text.chars().take(240).collect::<String>()
    };
    let mut problems = Vec::new();
    for (name, want) in expected {
        let got = &actual[name];
        if want == got {
            continue;
        }
        let missing: Vec<&Vec<u8>> = want
            .iter()
            .filter(|r| got.binary_search(r).is_err())
            .collect();
        let extra: Vec<&Vec<u8>> = got
            .iter()
            .filter(|r| want.binary_search(r).is_err())
            .collect();
        problems.push(format!(
            "{name}: {} rows, {} in {expected_run}; {} missing, e.g. {:?}; {} unexpected, e.g. {:?}{}",
            got.len(),
            want.len(),
            missing.len(),
            missing.iter().take(3).map(|r| show(r)).collect::<Vec<_>>(),
            extra.len(),
            extra.iter().take(3).map(|r| show(r)).collect::<Vec<_>>(),
            if missing.is_empty() && extra.is_empty() { " (some rows twice)" } else { "" }
        ));
    }
    if problems.is_empty() {
        Ok(expected
            .iter()
            .map(|(n, rows)| (n.clone(), rows.len()))
            .collect())
    } else {
        Err(problems.join("\n"))
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

/// A `touchline` process in the background, killed if the test fails before
/// stopping it, so that no test leaves one running.
pub struct Running(pub Child);

impl Running {
    /// Panics if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.0.try_wait() {
            panic!("touchline exited early: {status}");
        }
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().expect("child status")
    }

    /// Sends SIGTERM and waits at most `limit` for the process to exit: its
    /// exit status, or `None` if it is still running.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {} failed", self.0.id());
        let deadline = Instant::now() + limit;
        loop {
            if let Some(exit) = self.exited() {
                return Some(exit);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and checks that the process exits 0 within `limit`.
    pub fn stop(&mut self, limit: Duration) {
        let exit = self
            .terminate(limit)
            .unwrap_or_else(|| panic!("touchline ignored SIGTERM for {limit:?}"));
        assert!(exit.success(), "touchline exited with {exit} after SIGTERM");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
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

/// The repository's root, from where cargo runs the tests: the path
/// compiled in names the checkout the test was built in, which a build cache
/// shared by several checkouts may keep long after it is gone.
pub fn repo_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest
        .parent()
        .expect("the tests package sits one level below the repository root")
        .to_path_buf()
}

/// `scripts/stack`, which starts and stops the local stack's servers.
pub fn stack_script() -> PathBuf {
    repo_root().join("scripts/stack")
}

impl TestEnv {
    /// Produces `generated` to this environment's topics, paced at
    /// `rate_per_s` messages a second.
    pub async fn produce_at(&self, generated: &touchline_loadgen::Generated, rate_per_s: u32) {
        let mut options =
            touchline_loadgen::ProduceOptions::new(&self.stack.brokers, &self.stack.registry_url);
        options.topic_prefix = self.prefix.clone();
        options.rate_per_s = Some(rate_per_s);
        let report = touchline_loadgen::produce(generated, &options, |_| {})
            .await
            .expect("the load reaches Kafka");
        assert_eq!(report.produced, generated.messages.len());
    }

    /// Every (topic, partition) of this environment's four source topics.
    fn source_partitions(&self, consumer: &BaseConsumer) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for channel in Channel::ALL {
            let topic = self.topic(channel);
            let metadata = consumer
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("metadata of {topic}: {e}"));
            for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
                list.add_partition(&topic, partition.id());
            }
        }
        list
    }

    /// A consumer of this environment's group that never joins it: it only
    /// reads the group's committed offsets and the topics' watermarks.
    fn observer(&self) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.stack.brokers)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("observer consumer")
    }

    /// Messages the broker holds on this environment's source topics: the
    /// sum of their high watermarks. Blocking.
    pub fn source_messages(&self) -> i64 {
        let consumer = self.observer();
        let list = self.source_partitions(&consumer);
        list.elements()
            .iter()
            .map(|e| {
                let (low, high) = consumer
                    .fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(10))
                    .unwrap_or_else(|error| panic!("watermarks of {}: {error}", e.topic()));
                high - low
            })
            .sum()
    }

    /// The sum of the offsets this environment's group has committed on its
    /// source topics (a partition without a commit counts 0). Blocking.
    pub fn committed_offsets(&self) -> i64 {
        let consumer = self.observer();
        let list = self.source_partitions(&consumer);
        let committed = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .expect("committed offsets");
        committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(offset) => offset,
                _ => 0,
            })
            .sum()
    }

    /// The single number `sql` (with `{db}`) returns.
    pub async fn count(&self, sql: &str) -> i64 {
        let text = self.execute(sql).await;
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{sql} -> {text:?}: {e}"))
    }
}

// --- Checks against the load generator's ground truth ---------------------

/// The `v_timeline` columns that [`check_timeline`] compares with the truth
/// (`customer_id` is [`check_identities`]'s).
pub const TIMELINE: &str = "SELECT event_id, toString(channel) AS channel, occurred_at, \
     occurred_at_ms, toString(topic) AS topic, contact_id, kind, csat, ces, nps, sentiment \
     FROM {db}.v_timeline";

/// A field of a timeline row, as the truth and the view each give it.
type Field = fn(&TruthEvent) -> Value;

fn rules() -> Vec<(&'static str, &'static str, Field)> {
    vec![
        ("channel", "channel", |e| Value::from(e.channel.as_str())),
        ("occurred_at (UTC, ms)", "occurred_at_ms", |e| {
            Value::from(e.occurred_at_ms)
        }),
        ("topic", "topic", |e| Value::from(e.topic.as_str())),
        ("contact_id", "contact_id", |e| {
            Value::from(e.contact_id.clone().unwrap_or_default())
        }),
        ("kind", "kind", |e| Value::from(e.kind.clone())),
        ("csat 1..5", "csat", |e| {
            e.csat.map_or(Value::Null, Value::from)
        }),
        ("ces 1..7", "ces", |e| {
            e.ces.map_or(Value::Null, Value::from)
        }),
        ("nps 0..10", "nps", |e| {
            e.nps.map_or(Value::Null, Value::from)
        }),
        ("sentiment -1..1", "sentiment", |e| {
            e.sentiment
                .map_or(Value::Null, |s| Value::from(f64::from(s)))
        }),
    ]
}

fn same(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(e), _) if e.is_f64() => actual
            .as_f64()
            .zip(e.as_f64())
            .is_some_and(|(a, e)| (a - e).abs() < 1e-6),
        (Value::Number(_), _) => as_i64(expected) == as_i64(actual),
        _ => expected == actual,
    }
}

/// `v_timeline` holds exactly the truth's distinct events, once each, with
/// every field of `SPEC.md` §2 as the truth gives it.
pub async fn check_timeline(env: &TestEnv, truth: &GroundTruth) {
    // One row per distinct event, no more, no fewer.
    let rows = env.query(TIMELINE).await;
    let mut by_id: HashMap<String, Value> = HashMap::new();
    for row in rows.iter() {
        let id = row["event_id"].as_str().expect("event_id").to_owned();
        assert!(
            by_id.insert(id.clone(), row.clone()).is_none(),
            "{id} shows twice"
        );
    }
    let expected: HashMap<&str, &TruthEvent> = truth
        .events
        .iter()
        .map(|e| (e.event_id.as_str(), e))
        .collect();
    let missing: Vec<&&str> = expected
        .keys()
        .filter(|id| !by_id.contains_key(**id))
        .collect();
    let extra: Vec<&String> = by_id
        .keys()
        .filter(|id| !expected.contains_key(id.as_str()))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} events missing (e.g. {:?}), {} unexpected (e.g. {:?})",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(rows.len(), truth.counts.events);

    // Every field, rule by rule.
    let mut failures = Vec::new();
    for (rule, column, field) in rules() {
        let wrong: Vec<String> = truth
            .events
            .iter()
            .filter_map(|event| {
                let want = field(event);
                let got = &by_id[&event.event_id][column];
                (!same(&want, got)).then(|| format!("{}: want {want}, got {got}", event.event_id))
            })
            .collect();
        if !wrong.is_empty() {
            failures.push(format!(
                "rule {rule}: {} of {} events differ, e.g. {:?}",
                wrong.len(),
                truth.events.len(),
                &wrong[..wrong.len().min(3)]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // occurred_at is the same instant in UTC, to the second.
    for row in &rows {
        let ms = as_i64(&row["occurred_at_ms"]).expect("ms");
        let text = row["occurred_at"].as_str().expect("DateTime as text");
        assert_eq!(text, utc_text(ms.div_euclid(1000)), "{}", row["event_id"]);
    }
}

/// Every malformed message of the truth is a dead letter with its reason and
/// its bytes.
pub async fn check_dead_letters(env: &TestEnv, truth: &GroundTruth) {
    let dead = env
        .query("SELECT reason, count() AS n, min(length(payload)) AS shortest FROM {db}.dead_letters GROUP BY reason")
        .await;
    let got: BTreeMap<String, i64> = dead
        .iter()
        .map(|r| {
            (
                r["reason"].as_str().unwrap_or_default().to_owned(),
                as_i64(&r["n"]).unwrap_or(0),
            )
        })
        .collect();
    let mut want: BTreeMap<String, i64> = BTreeMap::new();
    for letter in &truth.dead_letters {
        *want.entry(letter.reason.clone()).or_default() += 1;
    }
    assert_eq!(got, want, "dead letters by reason");
    for row in &dead {
        assert!(
            as_i64(&row["shortest"]).unwrap_or(0) > 0,
            "payload kept: {row}"
        );
    }
}

/// `YYYY-MM-DD hh:mm:ss` of Unix seconds, UTC.
pub fn utc_text(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .expect("a representable time")
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

// Identity resolution (`SPEC.md` §3), checked against an oracle computed here
// from the ground truth's events. The oracle is a deliberately plain
// re-statement of the rules: customers are connected components of the
// identifiers linked by events; a component with several accounts is split by
// nearest account in hops (ties to the account that sorts first); the anchor
// of a component without an account is its first identifier in the order
// email, phone, social, device, visitor.

const KINDS: [&str; 6] = ["account", "email", "phone", "social", "device", "visitor"];

fn rank(identifier: &str) -> (usize, &str) {
    let (kind, value) = identifier.split_once(':').expect("typed identifier");
    let rank = KINDS.iter().position(|k| *k == kind).expect("known kind");
    (rank, value)
}

/// Each event's valid identifiers, in anchor order.
pub fn link_sets(truth: &GroundTruth) -> Vec<Vec<String>> {
    truth
        .events
        .iter()
        .map(|event| {
            let mut set: Vec<String> = event
                .identifiers
                .iter()
                .filter_map(|use_| use_.normal.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            set.sort_by(|a, b| rank(a).cmp(&rank(b)));
            set
        })
        .collect()
}

/// identifier -> the anchor of its customer, by the rules of §3.
pub fn oracle(truth: &GroundTruth) -> BTreeMap<String, String> {
    let mut neighbours: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for set in link_sets(truth) {
        for a in &set {
            let entry = neighbours.entry(a.clone()).or_default();
            entry.extend(set.iter().filter(|b| *b != a).cloned());
        }
    }
    let mut anchor_of = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for start in neighbours.keys() {
        if !seen.insert(start.clone()) {
            continue;
        }
        let mut component = vec![start.clone()];
        let mut queue = VecDeque::from([start.clone()]);
        while let Some(node) = queue.pop_front() {
            for next in &neighbours[&node] {
                if seen.insert(next.clone()) {
                    component.push(next.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        let mut accounts: Vec<&String> = component
            .iter()
            .filter(|i| i.starts_with("account:"))
            .collect();
        accounts.sort();
        if accounts.len() <= 1 {
            let anchor = component
                .iter()
                .min_by(|a, b| rank(a).cmp(&rank(b)))
                .expect("non-empty")
                .clone();
            for id in &component {
                anchor_of.insert(id.clone(), anchor.clone());
            }
            continue;
        }
        // Multi-source BFS from the accounts in sorted order: the first
        // account to reach a node at its distance is the one that sorts first.
        let mut owner: HashMap<String, (usize, String)> = HashMap::new();
        let mut queue = VecDeque::new();
        for account in &accounts {
            owner.insert((*account).clone(), (0, (*account).clone()));
            queue.push_back((*account).clone());
        }
        while let Some(node) = queue.pop_front() {
            let (distance, account) = owner[&node].clone();
            for next in &neighbours[&node] {
                match owner.get(next) {
                    None => {
                        owner.insert(next.clone(), (distance + 1, account.clone()));
                        queue.push_back(next.clone());
                    }
                    Some((d, a)) if *d == distance + 1 && account < *a => {
                        owner.insert(next.clone(), (distance + 1, account.clone()));
                    }
                    Some(_) => {}
                }
            }
        }
        for id in &component {
            anchor_of.insert(id.clone(), owner[id].1.clone());
        }
    }
    anchor_of
}

/// `v_identities`: identifier -> (customer_id, anchor); panics unless it
/// has one row per identifier.
pub async fn identities(env: &TestEnv) -> BTreeMap<String, (String, String)> {
    let rows = env
        .query("SELECT identifier, customer_id, anchor FROM {db}.v_identities")
        .await;
    let identities: BTreeMap<String, (String, String)> = rows
        .iter()
        .map(|r| {
            let field = |name: &str| r[name].as_str().expect("string").to_owned();
            (field("identifier"), (field("customer_id"), field("anchor")))
        })
        .collect();
    assert_eq!(rows.len(), identities.len(), "one row per identifier");
    identities
}

/// Reads v_identities and v_timeline and checks them against the oracle.
pub async fn check_identities(env: &TestEnv, truth: &GroundTruth) {
    let expected = oracle(truth);
    let actual = identities(env).await;
    let expected_ids: BTreeSet<&String> = expected.keys().collect();
    let actual_ids: BTreeSet<&String> = actual.keys().collect();
    assert_eq!(actual_ids, expected_ids, "the identifiers of v_identities");

    // The same partition: identifiers share a customer_id exactly when they
    // share an anchor, and that anchor is the oracle's.
    let mut customer_of_anchor: BTreeMap<&String, &String> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (id, anchor) in &expected {
        let (customer, actual_anchor) = &actual[id];
        if actual_anchor != anchor {
            wrong.push(format!("{id}: anchor {actual_anchor}, want {anchor}"));
        }
        let first = customer_of_anchor.entry(anchor).or_insert(customer);
        if *first != customer {
            wrong.push(format!(
                "{id}: customer {customer}, but {anchor}'s is {first}"
            ));
        }
    }
    let distinct: BTreeSet<&&String> = customer_of_anchor.values().collect();
    assert_eq!(
        distinct.len(),
        customer_of_anchor.len(),
        "one customer_id per anchor"
    );
    assert!(
        wrong.is_empty(),
        "{} wrong, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );

    // Every timeline event carries its first identifier's customer.
    let timeline: HashMap<String, String> = env
        .query("SELECT event_id, customer_id FROM {db}.v_timeline")
        .await
        .iter()
        .map(|r| {
            (
                r["event_id"].as_str().expect("id").to_owned(),
                r["customer_id"].as_str().expect("customer").to_owned(),
            )
        })
        .collect();
    let mut wrong = Vec::new();
    for (event, set) in truth.events.iter().zip(link_sets(truth)) {
        let want = set.first().map_or("", |first| actual[first].0.as_str());
        if timeline[&event.event_id] != want {
            wrong.push(format!(
                "{}: {} want {want}",
                event.event_id, timeline[&event.event_id]
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} events with the wrong customer, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

/// Every view against the truth: `v_timeline` (every column, `customer_id`
/// included), `v_identities`, the derived views ([`metrics_oracle`]) and
/// `dead_letters` by reason, by source topic
/// (without this environment's prefix) and in all.
pub async fn check_every_view(env: &TestEnv, truth: &GroundTruth) {
    check_timeline(env, truth).await;
    check_identities(env, truth).await;
    metrics_oracle::check_derived(env, truth).await;
    check_dead_letters(env, truth).await;
    let rows = env
        .query("SELECT topic, reason, count() AS n FROM {db}.dead_letters GROUP BY topic, reason")
        .await;
    let got: BTreeMap<(String, String), i64> = rows
        .iter()
        .map(|r| {
            let topic = r["topic"].as_str().unwrap_or_default();
            let topic = topic.strip_prefix(&env.prefix).unwrap_or(topic);
            let reason = r["reason"].as_str().unwrap_or_default();
            (
                (topic.to_owned(), reason.to_owned()),
                as_i64(&r["n"]).unwrap_or(0),
            )
        })
        .collect();
    let mut want: BTreeMap<(String, String), i64> = BTreeMap::new();
    for letter in &truth.dead_letters {
        *want
            .entry((letter.topic.clone(), letter.reason.clone()))
            .or_default() += 1;
    }
    assert_eq!(got, want, "dead letters by source topic and reason");
    let total = env.count("SELECT count() FROM {db}.dead_letters").await;
    assert_eq!(
        total,
        i64::try_from(truth.dead_letters.len()).unwrap_or(i64::MAX),
        "dead letters in all"
    );
}
