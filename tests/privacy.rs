//! Privacy of customer data, end to end (`docs/design/20261122_privacy.md`):
//!
//! - pseudonymisation: with a key, no email, phone number or social handle
//!   reaches a table (dead letters aside, which keep raw bytes), customers are
//!   the same partition as without it, and `touchline pseudonym` finds them;
//! - message text is stored only for the channels that ask for it;
//! - `touchline forget` leaves nothing of a customer in any table, column or
//!   the identity-link topic, and later events carrying its identifiers are
//!   dropped and counted;
//! - the logs of those runs, at debug level, and `/metrics` hold no email,
//!   phone number (raw or normalised) or key;
//! - ClickHouse 18.16 started with `deploy/clickhouse/users.xml` keeps the
//!   dashboards' user read-only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use touchline_loadgen::truth::{GroundTruth, IdKind};
use touchline_loadgen::{generate, Generated, Scenario};
use touchline_model::{Identifier, Pseudonymiser};
use touchline_tests::{identities, now_ms, oracle, Running, TestEnv};

/// The key of these tests (64 hex digits, as `openssl rand -hex 32` gives).
const KEY: &str = "5f0c6a0e8d1b4c3a9e7f2d6b1a8c4e3f0b9d7a6c5e4f3a2b1c0d9e8f7a6b5c4d";

fn pseudonymiser() -> Pseudonymiser {
    Pseudonymiser::keyed(KEY.as_bytes()).expect("a long key")
}

fn scenario(seed: u64, customers: usize) -> Generated {
    let mut scenario = Scenario::new(seed, customers, Scenario::start_ending_at(now_ms(), 14), 14);
    scenario.duplicate_rate = 0.05;
    scenario.bad_rate = 0.02;
    generate(&scenario).expect("a valid scenario")
}

/// `touchline <subcommand>` for `env`, pseudonymised with [`KEY`].
fn pseudonymised(env: &TestEnv, subcommand: &str) -> Command {
    let mut command = env.touchline(subcommand);
    command
        .env("TOUCHLINE_PSEUDONYMISATION", "true")
        .env("TOUCHLINE_PSEUDONYMISATION_KEY", KEY);
    command
}

/// Runs `command` to completion; its standard output and error, together.
fn output_of(mut command: Command) -> String {
    let output = command.output().expect("touchline starts");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

/// Every email and phone number of the truth, as written in the messages
/// and normalised (the value after `kind:`), and every social handle.
fn personal_values(truth: &GroundTruth) -> BTreeSet<String> {
    let mut values = BTreeSet::new();
    for event in &truth.events {
        for use_ in &event.identifiers {
            if !matches!(use_.kind, IdKind::Email | IdKind::Phone | IdKind::Social) {
                continue;
            }
            let raw = use_.raw.trim();
            // `anonymous` and other words are not personal data.
            if raw.len() >= 7 && raw != "anonymous" {
                values.insert(raw.to_owned());
            }
            if let Some(normal) = &use_.normal {
                let value = normal.split_once(':').map_or(normal.as_str(), |(_, v)| v);
                let value = if use_.kind == IdKind::Social {
                    value.split_once(':').map_or(value, |(_, handle)| handle)
                } else {
                    value
                };
                if value.len() >= 7 {
                    values.insert(value.to_owned());
                }
            }
        }
    }
    values
}

/// Which of `needles` (case-insensitive) occur in `haystack`.
fn found_in<'a>(haystack: &str, needles: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let haystack = haystack.to_lowercase();
    needles
        .into_iter()
        .filter(|n| haystack.contains(&n.to_lowercase()))
        .cloned()
        .collect()
}

/// Every table of the database (views excluded) as text, by name: every
/// column of every row, so that a search finds a value wherever it is.
async fn dump(env: &TestEnv) -> BTreeMap<String, String> {
    let tables = env
        .query(
            "SELECT name FROM system.tables WHERE database = '{db}' AND engine NOT LIKE '%View%'",
        )
        .await;
    let mut dumped = BTreeMap::new();
    for table in tables {
        let name = table["name"].as_str().expect("name").to_owned();
        let text = env
            .execute(&format!(
                "SELECT * FROM {{db}}.`{name}` FORMAT TabSeparatedRaw"
            ))
            .await;
        dumped.insert(name, text);
    }
    dumped
}

/// Tables (and what) in which any of `needles` occurs.
async fn leaks(
    env: &TestEnv,
    needles: &BTreeSet<String>,
    except: &[&str],
) -> BTreeMap<String, Vec<String>> {
    dump(env)
        .await
        .into_iter()
        .filter(|(table, _)| !except.contains(&table.as_str()))
        .filter_map(|(table, text)| {
            let found = found_in(&text, needles);
            (!found.is_empty()).then_some((table, found))
        })
        .collect()
}

/// The oracle's customers (`SPEC.md` §3) in stored form: stored identifier
/// -> stored anchor.
fn stored_oracle(truth: &GroundTruth, stored: &Pseudonymiser) -> BTreeMap<String, String> {
    oracle(truth)
        .into_iter()
        .map(|(id, anchor)| {
            let id = Identifier::parse(&id).expect("normal form");
            let anchor = Identifier::parse(&anchor).expect("normal form");
            (stored.stored(&id), stored.stored(&anchor))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pseudonymised_tables_hold_no_email_phone_or_handle_and_the_same_customers() {
    let generated = scenario(81, 150);
    let truth = &generated.truth;
    let env = TestEnv::new("privacy_pseudonymised");
    env.create_topics(4).await;
    env.produce(&generated).await;
    env.run_touchline("migrate", &[]);
    let mut run = pseudonymised(&env, "run");
    run.arg("--until-caught-up").env("RUST_LOG", "debug");
    let logs = output_of(run);

    // Identity resolution gives the oracle's customers, in stored form.
    let stored = pseudonymiser();
    let expected = stored_oracle(truth, &stored);
    let actual = identities(&env).await;
    assert_eq!(
        actual.keys().collect::<BTreeSet<_>>(),
        expected.keys().collect::<BTreeSet<_>>(),
        "the stored identifiers"
    );
    for (id, anchor) in &expected {
        let (customer, actual_anchor) = &actual[id];
        assert_eq!(actual_anchor, anchor, "anchor of {id}");
        let anchor = oracle(truth)
            .into_values()
            .find(|a| stored.stored(&Identifier::parse(a).expect("valid")) == *anchor)
            .expect("an anchor");
        assert_eq!(
            *customer,
            stored.customer_id(&Identifier::parse(&anchor).expect("valid")),
            "keyed customer id of {id}"
        );
    }
    // Every event keeps its customer.
    let with_customer = env
        .count("SELECT count() FROM {db}.v_timeline WHERE customer_id != ''")
        .await;
    let identified = truth
        .events
        .iter()
        .filter(|e| e.identifiers.iter().any(|u| u.normal.is_some()))
        .count();
    assert_eq!(with_customer, i64::try_from(identified).expect("small"));

    // `touchline pseudonym` gives what an analyst looks a customer up by.
    let email = expected
        .keys()
        .next()
        .and_then(|_| {
            truth
                .events
                .iter()
                .flat_map(|e| &e.identifiers)
                .find(|u| u.kind == IdKind::Email && u.normal.is_some())
        })
        .expect("an email in the load");
    let mut lookup = pseudonymised(&env, "pseudonym");
    lookup.arg(format!("email:{}", email.raw));
    let shown = output_of(lookup);
    let shown = shown.trim();
    assert!(actual.contains_key(shown), "{shown} is in v_identities");
    assert!(!shown.contains('@'), "{shown}");

    // No email, phone number or handle in any table but the dead letters,
    // which keep the raw bytes of messages that could not be read.
    let personal = personal_values(truth);
    assert!(personal.len() > 100, "{} values", personal.len());
    let leaked = leaks(&env, &personal, &["dead_letter_log"]).await;
    assert!(leaked.is_empty(), "personal data in tables: {leaked:?}");
    // The search does find them where they are: in the raw dead letters.
    let raw = leaks(&env, &personal, &[]).await;
    assert!(raw.contains_key("dead_letter_log"), "{raw:?}");
    // Text is off by default.
    assert_eq!(env.count("SELECT count() FROM {db}.message_texts").await, 0);

    // Nor in the logs at debug level, nor the key.
    let mut secrets = personal.clone();
    secrets.insert(KEY.to_owned());
    let in_logs = found_in(&logs, &secrets);
    assert!(
        in_logs.is_empty(),
        "in the debug logs: {in_logs:?} ({} bytes of logs)",
        logs.len()
    );
    assert!(logs.contains("DEBUG"), "debug logs were captured");
    env.drop_database().await;
}

/// A `touchline run` in the background, its logs going to a file.
struct LoggedRun {
    child: Running,
    log: PathBuf,
    metrics: String,
}

impl LoggedRun {
    fn start(env: &TestEnv, log: PathBuf) -> LoggedRun {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let file = std::fs::File::create(&log).expect("log file");
        let child = pseudonymised(env, "run")
            .env("RUST_LOG", "debug")
            .env("TOUCHLINE_METRICS_ADDR", format!("127.0.0.1:{port}"))
            .env("TOUCHLINE_STORE_TEXT", "chatbot")
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("touchline starts");
        LoggedRun {
            child: Running(child),
            log,
            metrics: format!("http://127.0.0.1:{port}/metrics"),
        }
    }

    async fn metrics(&self) -> String {
        reqwest::get(&self.metrics)
            .await
            .expect("metrics served")
            .text()
            .await
            .expect("metrics text")
    }

    /// SIGTERM, an exit 0 within a minute, then its logs.
    fn stop(mut self) -> String {
        self.child.stop(Duration::from_secs(60));
        let mut text = String::new();
        std::fs::File::open(&self.log)
            .expect("log")
            .read_to_string(&mut text)
            .expect("utf-8 logs");
        text
    }
}

/// Contacts counted in the daily aggregates minus contacts: 0 once every
/// day is computed from the contacts there are.
const AGGREGATES_MINUS_CONTACTS: &str = "SELECT \
     (SELECT toInt64(sum(contacts)) FROM {db}.channel_daily FINAL) - \
     (SELECT toInt64(count()) FROM {db}.contacts FINAL)";

/// Waits until `sql` returns `want`.
async fn wait_for(env: &TestEnv, sql: &str, want: i64) {
    let started = Instant::now();
    loop {
        let got = env.count(sql).await;
        if got == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "{sql}: {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The sum of a counter's samples in a Prometheus text page.
fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The link sets of the link topic whose latest message is not a tombstone.
/// Read to the end a fetch reports: tansu lists an end behind the last
/// batch's first message.
fn live_link_sets(env: &TestEnv) -> Vec<String> {
    let topic = format!("{}touchline.identity.links", env.prefix);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.stack.brokers)
        .set("group.id", format!("{}-reader", env.group))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(&topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&list).expect("assign");
    let mut latest: HashMap<Vec<u8>, Option<String>> = HashMap::new();
    let mut next = 0;
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the link topic was not read to its end"
        );
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) if message.offset() >= next => {
                next = message.offset() + 1;
                latest.insert(
                    message.key().unwrap_or_default().to_vec(),
                    message
                        .payload()
                        .map(|p| String::from_utf8_lossy(p).into_owned()),
                );
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            _ => {}
        }
    }
    latest.into_values().flatten().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_leaves_nothing_of_a_customer_and_drops_its_later_events() {
    let generated = scenario(82, 120);
    let truth = &generated.truth;
    let env = TestEnv::new("privacy_forget");
    env.create_topics(4).await;
    env.run_touchline("migrate", &[]);
    env.produce(&generated).await;
    let dir = tempdir("privacy_forget");
    let running = LoggedRun::start(&env, dir.join("run.log"));
    let expected = oracle(truth);
    wait_for(
        &env,
        "SELECT count() FROM {db}.v_timeline",
        i64::try_from(truth.counts.events).expect("small"),
    )
    .await;
    wait_for(
        &env,
        "SELECT count() FROM {db}.v_identities",
        i64::try_from(expected.len()).expect("small"),
    )
    .await;
    // The daily aggregates count every contact.
    wait_for(&env, AGGREGATES_MINUS_CONTACTS, 0).await;
    // Text is stored for the chatbot only.
    let texts = env
        .query("SELECT toString(channel) AS channel, count() AS n FROM {db}.v_messages GROUP BY channel")
        .await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(texts[0]["channel"], "chatbot");

    // The victim: a customer of the truth with an email, a phone number and
    // chatbot messages.
    let stored = pseudonymiser();
    let victim = truth
        .events
        .iter()
        .filter(|e| e.channel.as_str() == "chatbot")
        .map(|e| e.customer.clone())
        .find(|customer| {
            let kinds: BTreeSet<IdKind> = truth
                .events
                .iter()
                .filter(|e| &e.customer == customer)
                .flat_map(|e| &e.identifiers)
                .filter(|u| u.normal.is_some())
                .map(|u| u.kind)
                .collect();
            kinds.contains(&IdKind::Email) && kinds.contains(&IdKind::Phone)
        })
        .expect("a customer with an email and a phone");
    let email = truth
        .events
        .iter()
        .filter(|e| e.customer == victim)
        .flat_map(|e| &e.identifiers)
        .find(|u| u.kind == IdKind::Email && u.normal.is_some())
        .and_then(|u| u.normal.clone())
        .expect("an email");
    let anchor = expected[&email].clone();
    let members: BTreeSet<String> = expected
        .iter()
        .filter(|(_, a)| **a == anchor)
        .map(|(id, _)| id.clone())
        .collect();
    // What must be gone: stored forms, customer ids, and the values as
    // the sources wrote them.
    let mut needles: BTreeSet<String> = BTreeSet::new();
    for member in &members {
        let id = Identifier::parse(member).expect("valid");
        needles.insert(stored.stored(&id));
        needles.insert(stored.customer_id(&id));
        needles.insert(member.split_once(':').expect("typed").1.to_owned());
    }
    for use_ in truth.events.iter().flat_map(|e| &e.identifiers) {
        if use_.normal.as_ref().is_some_and(|n| members.contains(n)) && use_.raw.trim().len() >= 7 {
            needles.insert(use_.raw.trim().to_owned());
        }
    }
    // They are there before.
    let before = leaks(&env, &needles, &[]).await;
    assert!(before.contains_key("timeline_events"), "{before:?}");
    assert!(before.contains_key("identity_assignments"), "{before:?}");
    let identities_before = env.count("SELECT count() FROM {db}.v_identities").await;

    let mut forget = pseudonymised(&env, "forget");
    forget.args([email.as_str(), "--settle-seconds", "3"]);
    let report = output_of(forget);
    eprintln!("{report}");
    assert!(report.contains("forgot 1 customer"), "{report}");
    let in_report = found_in(&report, &needles);
    assert!(in_report.is_empty(), "forget printed {in_report:?}");

    let after = leaks(&env, &needles, &[]).await;
    assert!(after.is_empty(), "left after forget: {after:?}");
    // Everyone else is still there, with the rebuilt graph's answers.
    wait_for(
        &env,
        "SELECT count() FROM {db}.v_identities",
        identities_before - i64::try_from(members.len()).expect("small"),
    )
    .await;
    // ... and every other identifier has the customer the rules give without
    // the erased customer's events: links through them are undone.
    let mut without = truth.clone();
    without.events.retain(|e| {
        !e.identifiers
            .iter()
            .any(|u| u.normal.as_ref().is_some_and(|n| members.contains(n)))
    });
    let want = stored_oracle(&without, &stored);
    let started = Instant::now();
    loop {
        let got: BTreeMap<String, String> = env
            .query("SELECT identifier, anchor FROM {db}.v_identities")
            .await
            .iter()
            .map(|r| {
                let field = |name: &str| r[name].as_str().expect("string").to_owned();
                (field("identifier"), field("anchor"))
            })
            .collect();
        if got == want {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "v_identities after forget: {} rows, {} wanted, {} differ",
            got.len(),
            want.len(),
            want.iter()
                .filter(|(id, a)| got.get(*id) != Some(*a))
                .count()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The days they had contacts on are recomputed without them.
    wait_for(&env, AGGREGATES_MINUS_CONTACTS, 0).await;
    // The identity-link topic holds no set with an identifier of theirs.
    let sets = live_link_sets(&env);
    assert!(!sets.is_empty());
    for set in &sets {
        for line in set.lines() {
            assert!(!members.contains(line), "a link set still holds {line}");
        }
    }

    // Their later events (here: their messages delivered again) are
    // dropped and counted, not stored.
    let theirs: Vec<_> = generated
        .messages
        .iter()
        .filter(|m| {
            m.event_id.as_ref().is_some_and(|id| {
                truth.events.iter().any(|e| {
                    &e.event_id == id
                        && e.identifiers
                            .iter()
                            .any(|u| u.normal.as_ref().is_some_and(|n| members.contains(n)))
                })
            })
        })
        .cloned()
        .collect();
    assert!(!theirs.is_empty());
    let again = Generated {
        messages: theirs.clone(),
        truth: truth.clone(),
    };
    env.produce(&again).await;
    let started = Instant::now();
    loop {
        let metrics = running.metrics().await;
        let dropped = counter(&metrics, "touchline_events_suppressed_total");
        if dropped >= theirs.len() as f64 {
            assert_eq!(dropped, theirs.len() as f64);
            let in_metrics = found_in(&metrics, needles.iter().chain([&KEY.to_owned()]));
            assert!(in_metrics.is_empty(), "in /metrics: {in_metrics:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{dropped} of {} later events dropped",
            theirs.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Give a batch time to be written if it (wrongly) were.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = leaks(&env, &needles, &[]).await;
    assert!(
        after.is_empty(),
        "back after their events came again: {after:?}"
    );

    // The logs of the pipeline, at debug level, hold no email, phone number
    // or handle of anyone, nor the key.
    let logs = running.stop();
    assert!(logs.contains("DEBUG"), "debug logs were captured");
    let mut secrets = personal_values(truth);
    secrets.insert(KEY.to_owned());
    let in_logs = found_in(&logs, &secrets);
    assert!(in_logs.is_empty(), "in the debug logs: {in_logs:?}");
    env.drop_database().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("touchline-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A ClickHouse 18.16 of this test's own (Debian's `clickhouse-server`, the
/// machine's config), with `deploy/clickhouse/users.xml` as a `users.d`
/// file. Killed on drop.
struct PrivateClickHouse {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl PrivateClickHouse {
    async fn start(passwords: &[(&str, &str)]) -> PrivateClickHouse {
        let dir = tempdir("privacy_clickhouse");
        let config = Path::new("/etc/clickhouse-server");
        for file in ["config.xml", "users.xml"] {
            std::fs::copy(config.join(file), dir.join(file))
                .expect("the machine's ClickHouse config");
        }
        std::fs::create_dir_all(dir.join("users.d")).expect("users.d");
        std::fs::copy(
            touchline_tests::repo_root().join("deploy/clickhouse/users.xml"),
            dir.join("users.d/touchline.xml"),
        )
        .expect("deploy/clickhouse/users.xml");
        let port = || {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port()
        };
        let (http, tcp, interserver) = (port(), port(), port());
        let path = |name: &str| format!("{}/{name}/", dir.display());
        for name in ["data", "tmp", "user_files", "format_schemas"] {
            std::fs::create_dir_all(dir.join(name)).expect("dir");
        }
        let mut command = Command::new("clickhouse-server");
        command
            .arg(format!(
                "--config-file={}",
                dir.join("config.xml").display()
            ))
            .arg("--")
            .arg(format!("--path={}", path("data")))
            .arg(format!("--tmp_path={}", path("tmp")))
            .arg(format!("--user_files_path={}", path("user_files")))
            .arg(format!("--format_schema_path={}", path("format_schemas")))
            .arg(format!("--logger.log={}", dir.join("server.log").display()))
            .arg(format!(
                "--logger.errorlog={}",
                dir.join("server.err.log").display()
            ))
            .arg("--listen_host=127.0.0.1")
            .arg(format!("--http_port={http}"))
            .arg(format!("--tcp_port={tcp}"))
            .arg(format!("--interserver_http_port={interserver}"))
            .stdout(std::fs::File::create(dir.join("stdout.log")).expect("log"))
            .stderr(std::fs::File::create(dir.join("stderr.log")).expect("log"));
        for (name, value) in passwords {
            command.env(name, value);
        }
        let child = command.spawn().expect("clickhouse-server starts");
        let server = PrivateClickHouse {
            child,
            dir,
            url: format!("http://127.0.0.1:{http}"),
        };
        let started = Instant::now();
        while reqwest::get(format!("{}/ping", server.url)).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "ClickHouse did not start; see {}",
                server.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        server
    }

    /// `sql` as `user`: the body, or the server's error.
    async fn as_user(&self, user: &str, password: &str, sql: &str) -> Result<String, String> {
        let response = reqwest::Client::new()
            .post(&self.url)
            .basic_auth(user, Some(password))
            .body(sql.to_owned())
            .send()
            .await
            .expect("ClickHouse answers");
        let ok = response.status().is_success();
        let text = response.text().await.expect("a body");
        if ok {
            Ok(text)
        } else {
            Err(text)
        }
    }
}

impl Drop for PrivateClickHouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_18_16_users_keep_the_pipeline_to_its_database_and_dashboards_read_only() {
    const ADMIN: &str = "admin secret";
    const PIPELINE: &str = "pipeline secret";
    const DASHBOARDS: &str = "dashboards secret";
    let server = PrivateClickHouse::start(&[
        ("TOUCHLINE_CH_ADMIN_PASSWORD", ADMIN),
        ("TOUCHLINE_CH_PIPELINE_PASSWORD", PIPELINE),
        ("TOUCHLINE_CH_DASHBOARDS_PASSWORD", DASHBOARDS),
    ])
    .await;
    // A database of someone else's on the same server.
    server
        .as_user(
            "default",
            "",
            "CREATE TABLE default.other (a UInt8) ENGINE = Memory",
        )
        .await
        .expect("the default user creates a table");

    // The admin migrates, the pipeline user runs the pipeline: its rights
    // are enough for `touchline run`.
    let env = TestEnv::new("privacy_users");
    env.create_topics(2).await;
    let generated = scenario(83, 30);
    env.produce(&generated).await;
    let as_touchline = |subcommand: &str, user: &str, password: &str| {
        let mut command = env.touchline(subcommand);
        command
            .env("TOUCHLINE_CLICKHOUSE_URL", &server.url)
            .env("TOUCHLINE_CLICKHOUSE_DATABASE", "cx")
            .env("TOUCHLINE_CLICKHOUSE_USER", user)
            .env("TOUCHLINE_CLICKHOUSE_PASSWORD", password);
        command
    };
    output_of(as_touchline("migrate", "touchline_admin", ADMIN));
    let mut run = as_touchline("run", "touchline", PIPELINE);
    run.arg("--until-caught-up");
    output_of(run);
    let events = server
        .as_user(
            "dashboards",
            DASHBOARDS,
            "SELECT count() FROM cx.v_timeline",
        )
        .await
        .expect("dashboards read the views");
    assert_eq!(events.trim(), truth_events(&generated.truth));

    // The pipeline's user: its database, inserts and selects, nothing more.
    let pipeline = |sql: &'static str| server.as_user("touchline", PIPELINE, sql);
    pipeline("SELECT count() FROM cx.timeline_events")
        .await
        .expect("the pipeline reads its tables");
    for sql in [
        "CREATE TABLE cx.extra (a UInt8) ENGINE = Memory",
        "DROP TABLE cx.timeline_events",
        "ALTER TABLE cx.timeline_events DELETE WHERE 1",
        "SELECT count() FROM default.other",
        "CREATE DATABASE elsewhere",
    ] {
        let refused = pipeline(sql).await;
        assert!(refused.is_err(), "the pipeline's user may run {sql}");
    }
    let refused = server
        .as_user(
            "touchline",
            PIPELINE,
            "CREATE TABLE cx.extra (a UInt8) ENGINE = Memory SETTINGS allow_ddl = 1",
        )
        .await;
    assert!(refused.is_err(), "the pipeline's user turned DDL back on");

    // The dashboards' user: reads, never writes, never another database.
    let dashboards = |sql: &'static str| server.as_user("dashboards", DASHBOARDS, sql);
    for sql in [
        "SELECT count() FROM cx.v_identities",
        "SELECT count() FROM cx.v_messages",
        "SELECT count() FROM cx.dead_letters",
        // The Grafana plugin sets per-query settings.
        "SELECT count() FROM cx.v_timeline SETTINGS max_execution_time = 30",
    ] {
        dashboards(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    for sql in [
        "INSERT INTO cx.identity_assignments (identifier) VALUES ('x')",
        "CREATE TABLE cx.extra (a UInt8) ENGINE = Memory",
        "DROP TABLE cx.v_timeline",
        "ALTER TABLE cx.timeline_events DELETE WHERE 1",
        "SELECT count() FROM default.other",
        "SET readonly = 0",
    ] {
        let refused = dashboards(sql).await;
        assert!(refused.is_err(), "the dashboards' user may run {sql}");
    }
    // What 18.16 cannot enforce (no grants per table): the dashboards' user
    // reads the tables of its database too. users.sql limits it to the views
    // on releases with SQL access control; the docs say so.
    dashboards("SELECT count() FROM cx.timeline_events")
        .await
        .expect("18.16 lets a reader of cx read its tables");
    // A wrong password is refused.
    assert!(server
        .as_user("touchline", "wrong", "SELECT 1")
        .await
        .is_err());

    // `touchline forget` runs as the admin, who may delete; the pipeline's
    // user may not.
    let anchors = oracle(&generated.truth);
    let mut emails: Vec<(String, String)> = anchors
        .iter()
        .filter(|(id, _)| id.starts_with("email:"))
        .map(|(id, anchor)| (id.clone(), anchor.clone()))
        .collect();
    emails.dedup_by(|a, b| a.1 == b.1);
    assert!(emails.len() >= 2, "two customers with an email");
    let mut forget = as_touchline("forget", "touchline", PIPELINE);
    forget.args([emails[1].0.as_str(), "--settle-seconds", "0"]);
    let refused = forget.output().expect("touchline starts");
    assert!(!refused.status.success(), "the pipeline's user erased rows");
    let mut forget = as_touchline("forget", "touchline_admin", ADMIN);
    forget.args([emails[0].0.as_str(), "--settle-seconds", "1"]);
    let report = output_of(forget);
    assert!(report.contains("forgot 1 customer"), "{report}");
}

fn truth_events(truth: &GroundTruth) -> String {
    truth.counts.events.to_string()
}
