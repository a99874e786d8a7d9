//! End to end: the load generator's events through Kafka, the registry and the
//! pipeline into ClickHouse, compared with the generator's ground truth, one
//! rule of `SPEC.md` §2 at a time.

use touchline_loadgen::{generate, Scenario};
use touchline_tests::{check_dead_letters, check_timeline, now_ms, TestEnv};

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

    check_timeline(&env, truth).await;
    check_dead_letters(&env, truth).await;

    // The summary command reads the same views.
    let summary = env.run_touchline("summary", &[]);
    assert!(
        summary.contains(&format!("{:<12} {:>10}", "all", truth.counts.events)),
        "{summary}"
    );
    env.drop_database().await;
}
