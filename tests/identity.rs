//! End to end: identity resolution (`SPEC.md` §3) through the real pipeline,
//! compared with an oracle computed here from the ground truth's events.
//!
//! The oracle is a deliberately plain re-statement of the rules: customers are
//! connected components of the identifiers linked by events; a component with
//! several accounts is split by nearest account in hops (ties to the account
//! that sorts first); the anchor of a component without an account is its
//! first identifier in the order email, phone, social, device, visitor.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use touchline_loadgen::truth::GroundTruth;
use touchline_loadgen::{generate, Generated, Scenario};
use touchline_tests::{now_ms, TestEnv};

const KINDS: [&str; 6] = ["account", "email", "phone", "social", "device", "visitor"];

fn rank(identifier: &str) -> (usize, &str) {
    let (kind, value) = identifier.split_once(':').expect("typed identifier");
    let rank = KINDS.iter().position(|k| *k == kind).expect("known kind");
    (rank, value)
}

/// Each event's valid identifiers, in anchor order.
fn link_sets(truth: &GroundTruth) -> Vec<Vec<String>> {
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
fn oracle(truth: &GroundTruth) -> BTreeMap<String, String> {
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

fn scenario(seed: u64) -> Generated {
    let mut scenario = Scenario::new(seed, 250, Scenario::start_ending_at(now_ms(), 14), 14);
    scenario.duplicate_rate = 0.1;
    generate(&scenario).expect("a valid scenario")
}

/// Reads v_identities and v_timeline and checks them against the oracle.
async fn check(env: &TestEnv, generated: &Generated) {
    let truth = &generated.truth;
    let expected = oracle(truth);
    let rows = env
        .query("SELECT identifier, customer_id, anchor FROM {db}.v_identities")
        .await;
    let actual: BTreeMap<String, (String, String)> = rows
        .iter()
        .map(|r| {
            let field = |name: &str| r[name].as_str().expect("string").to_owned();
            (field("identifier"), (field("customer_id"), field("anchor")))
        })
        .collect();
    assert_eq!(rows.len(), actual.len(), "one row per identifier");
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
