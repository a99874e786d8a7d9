//! End to end: identity resolution (`SPEC.md` §3) through the real pipeline,
//! compared with an oracle computed from the ground truth's events
//! (`touchline_tests::oracle`).
//!
//! The oracle is a deliberately plain re-statement of the rules: customers are
//! connected components of the identifiers linked by events; a component with
//! several accounts is split by nearest account in hops (ties to the account
//! that sorts first); the anchor of a component without an account is its
//! first identifier in the order email, phone, social, device, visitor.

use touchline_loadgen::{generate, Generated, Scenario};
use touchline_tests::{check_identities, now_ms, oracle, TestEnv};

fn scenario(seed: u64) -> Generated {
    let mut scenario = Scenario::new(seed, 250, Scenario::start_ending_at(now_ms(), 14), 14);
    scenario.duplicate_rate = 0.1;
    generate(&scenario).expect("a valid scenario")
}

/// Reads v_identities and v_timeline and checks them against the oracle.
async fn check(env: &TestEnv, generated: &Generated) {
    check_identities(env, &generated.truth).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_are_the_true_partition_of_identifiers() {
    let generated = scenario(31);
    let truth = &generated.truth;
    // The hard cases of SPEC §3 are in this load.
    assert!(
        !truth.households.is_empty(),
        "two accounts sharing a device and a phone"
    );
    assert!(
        !truth.hard_cases.email_variants.is_empty(),
        "an email in three cases"
    );
    assert!(
        !truth.hard_cases.phone_formats.is_empty(),
        "a phone number in four formats"
    );
    let expected = oracle(truth);
    for household in &truth.households {
        for shared in &household.shared {
            assert!(
                expected[shared].starts_with("account:"),
                "{shared} joins one of the household's accounts"
            );
        }
    }
    for case in truth
        .hard_cases
        .email_variants
        .iter()
        .chain(&truth.hard_cases.phone_formats)
    {
        assert!(
            expected.contains_key(&case.normal),
            "{} is one identifier",
            case.normal
        );
    }

    let env = TestEnv::new("identity");
    env.create_topics(4).await;
    env.produce(&generated).await;
    env.run_touchline("migrate", &[]);
    env.run_touchline("run", &["--until-caught-up"]);
    check(&env, &generated).await;
    env.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_stream_does_not_change_the_result() {
    let generated = scenario(32);
    let half = generated.messages.len() / 2;
    let env = TestEnv::new("identity_restart");
    env.create_topics(4).await;
    env.run_touchline("migrate", &[]);
    env.produce(&generated.prefix(half)).await;
    env.run_touchline("run", &["--until-caught-up"]);
    let rest = Generated {
        messages: generated.messages[half..].to_vec(),
        truth: generated.truth.clone(),
    };
    env.produce(&rest).await;
    env.run_touchline("run", &["--until-caught-up"]);
    check(&env, &generated).await;
    env.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_reach_the_answer_of_one() {
    let generated = scenario(33);
    let env = TestEnv::new("identity_two");
    env.create_topics(4).await;
    env.run_touchline("migrate", &[]);
    env.produce(&generated).await;
    let instances: Vec<std::process::Child> = (0..2)
        .map(|_| {
            env.touchline("run")
                .arg("--until-caught-up")
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("touchline starts")
        })
        .collect();
    for mut instance in instances {
        assert!(instance.wait().expect("instance exits").success());
    }
    // Both compared with the oracle, which a single instance also meets.
    check(&env, &generated).await;
    env.drop_database().await;
}
