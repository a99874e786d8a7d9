//! End to end: contacts, journeys and the omnichannel metrics (`SPEC.md`
//! §4-6) through Kafka and the pipeline, compared with the load generator's
//! ground truth column by column; then the same events delivered twice and
//! shuffled give identical views.

use std::collections::BTreeMap;

use touchline_loadgen::{generate, Generated, Scenario};
use touchline_tests::{check_every_view, now_ms, TestEnv};

fn load() -> Generated {
    let mut scenario = Scenario::new(4242, 400, Scenario::start_ending_at(now_ms(), 28), 28);
    scenario.duplicate_rate = 0.1;
    scenario.bad_rate = 0.01;
    generate(&scenario).expect("a valid scenario")
}

/// Every `v_*` view of the environment's database, each row as JSON text,
/// sorted: what two runs must agree on.
async fn views(env: &TestEnv) -> BTreeMap<String, Vec<String>> {
    let names = env
        .query("SELECT name FROM system.tables WHERE database = '{db}' AND name LIKE 'v\\_%'")
        .await;
    let mut views = BTreeMap::new();
    for name in names {
        let name = name["name"].as_str().expect("a name").to_owned();
        let mut rows: Vec<String> = env
            .query(&format!("SELECT * FROM {{db}}.{name}"))
            .await
            .iter()
            .map(ToString::to_string)
            .collect();
        rows.sort_unstable();
        views.insert(name, rows);
    }
    views
}

/// The messages twice over, in an order unrelated to time: each position
/// goes to a pseudo-random place (a fixed multiplicative hash, so the test
/// is repeatable).
fn doubled_and_shuffled(generated: &Generated) -> Generated {
    let mut messages: Vec<(u64, _)> = generated
        .messages
        .iter()
        .chain(&generated.messages)
        .cloned()
        .enumerate()
        .map(|(i, m)| ((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15), m))
        .collect();
    messages.sort_by_key(|(place, _)| *place);
    Generated {
        messages: messages.into_iter().map(|(_, m)| m).collect(),
        truth: generated.truth.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_views_equal_the_truth_and_ignore_order_and_repeats() {
    let generated = load();
    assert!(
        generated.truth.contacts.len() > 1000,
        "a load with contacts"
    );

    let first = TestEnv::new("journeys");
    first.create_topics(4).await;
    first.produce(&generated).await;
    first.run_touchline("migrate", &[]);
    first.run_touchline("run", &["--until-caught-up"]);
    check_every_view(&first, &generated.truth).await;

    let second = TestEnv::new("journeys_shuffled");
    second.create_topics(4).await;
    second.produce(&doubled_and_shuffled(&generated)).await;
    second.run_touchline("migrate", &[]);
    second.run_touchline("run", &["--until-caught-up"]);
    let (a, b) = (views(&first).await, views(&second).await);
    assert!(a.len() >= 7, "every view compared: {:?}", a.keys());
    for name in [
        "v_contacts",
        "v_journeys",
        "v_channel_daily",
        "v_consistency_daily",
        "v_customers",
    ] {
        assert!(
            a.get(name).is_some_and(|rows| !rows.is_empty()),
            "{name} has rows"
        );
    }
    for (name, rows) in &a {
        assert_eq!(
            Some(rows),
            b.get(name),
            "{name} after a shuffled, doubled delivery"
        );
    }
    first.drop_database().await;
    second.drop_database().await;
}
