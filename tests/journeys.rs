//! End to end: contacts, journeys and the omnichannel metrics (`SPEC.md`
//! §4-6) through Kafka and the pipeline, compared with the load generator's
//! ground truth column by column; then the same events delivered twice and
//! shuffled give identical views.

use touchline_loadgen::{generate, Generated, Scenario};
use touchline_tests::{check_every_view, compare_views, now_ms, TestEnv, ViewDump};

/// Every `v_*` view, every column as stored: what two runs must agree on.
const COMPARED: ViewDump = ViewDump {
    dead_letters: false,
    mask_run: false,
};

fn load() -> Generated {
    let mut scenario = Scenario::new(4242, 400, Scenario::start_ending_at(now_ms(), 28), 28);
    scenario.duplicate_rate = 0.1;
    scenario.bad_rate = 0.01;
    generate(&scenario).expect("a valid scenario")
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
    let (a, b) = (first.views(COMPARED).await, second.views(COMPARED).await);
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
    if let Err(difference) = compare_views(&a, &b, "the first run") {
        panic!("the views after a shuffled, doubled delivery:\n{difference}");
    }
    first.drop_database().await;
    second.drop_database().await;
}
