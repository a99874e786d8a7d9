//! End to end: the load generator's events through Kafka, the registry and the
//! pipeline into ClickHouse, compared with the generator's ground truth, one
//! rule of `SPEC.md` §2 at a time.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use touchline_loadgen::truth::TruthEvent;
use touchline_loadgen::{generate, Scenario};
use touchline_tests::{as_i64, now_ms, TestEnv};

const TIMELINE: &str = "SELECT event_id, toString(channel) AS channel, occurred_at, \
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_holds_exactly_the_distinct_events() {
    let env = TestEnv::new("timeline");
    env.create_topics(4).await;
    let mut scenario = Scenario::new(2026, 300, Scenario::start_ending_at(now_ms(), 14), 14);
    scenario.duplicate_rate = 0.15;
    scenario.bad_rate = 0.02;
    let generated = generate(&scenario).expect("a valid scenario");
    let truth = &generated.truth;
    assert!(truth.counts.duplicates > 0, "the load redelivers messages");
    assert!(truth.counts.bad > 0, "the load has malformed messages");

    env.produce(&generated).await;

    env.run_touchline("migrate", &[]);
    env.run_touchline("run", &["--until-caught-up"]);

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

    // Every malformed message is a dead letter with its reason and bytes.
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

    // The summary command reads the same views.
    let summary = env.run_touchline("summary", &[]);
    assert!(
        summary.contains(&format!("{:<12} {:>10}", "all", truth.counts.events)),
        "{summary}"
    );
    env.drop_database().await;
}

/// `YYYY-MM-DD hh:mm:ss` of Unix seconds, UTC.
fn utc_text(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .expect("a representable time")
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}
