//! Batch sizes on a real broker: batches grow to
//! `pipeline.batch_catch_up_messages` while that many messages wait unread,
//! and stay at `pipeline.batch_max_messages` while the pipeline keeps up.
//! Each run prints how many batches it took and the largest.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use touchline_loadgen::{generate, Generated, Scenario};
use touchline_tests::{check_timeline, now_ms, Running, TestEnv};

/// The size limit of a batch while the pipeline keeps up.
const SMALL: u64 = 100;
/// ...and while a backlog of at least this many messages waits.
const CATCH_UP: u64 = 2_000;

fn load(seed: u64, customers: usize) -> Generated {
    let scenario = Scenario::new(seed, customers, Scenario::start_ending_at(now_ms(), 14), 14);
    generate(&scenario).expect("a valid scenario")
}

/// The batch settings under test; a linger long enough that size, not
/// time, ends a batch that the catch-up rule lets grow.
fn batch_args(linger_ms: u64) -> Vec<String> {
    vec![
        format!("--batch-max-messages={SMALL}"),
        format!("--batch-catch-up-messages={CATCH_UP}"),
        format!("--batch-linger-ms={linger_ms}"),
    ]
}

/// The batches and the largest batch of the `consumed N messages in B
/// batches (largest L): ...` line `touchline run` prints as it stops,
/// checking that it read at least the `produced` messages (derive marks
/// are messages too).
fn consumed(stdout: &str, produced: u64) -> (u64, u64) {
    eprintln!("{stdout}");
    let line = stdout
        .lines()
        .find(|line| line.starts_with("consumed "))
        .unwrap_or_else(|| panic!("no `consumed` line in:\n{stdout}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|word| word.parse().ok())
        .collect();
    let [messages, batches, largest, ..] = numbers[..] else {
        panic!("unexpected summary line: {line}");
    };
    assert!(
        messages >= produced,
        "{messages} of {produced} messages read"
    );
    (batches, largest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_grow_while_a_backlog_waits() {
    let env = TestEnv::new("batching_backlog");
    env.create_topics(1).await;
    let generated = load(71, 1_000);
    let produced = generated.messages.len() as u64;
    assert!(
        produced > 5 * CATCH_UP,
        "{produced} messages are not a backlog"
    );
    env.produce(&generated).await;
    env.run_touchline("migrate", &[]);

    let mut args = vec!["--until-caught-up".to_owned()];
    args.extend(batch_args(10_000));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (batches, largest) = consumed(&env.run_touchline("run", &args), produced);

    assert!(
        largest > SMALL && largest <= CATCH_UP,
        "largest batch {largest}: batches should grow past {SMALL}, up to {CATCH_UP}"
    );
    // Batches of derive marks, and those read before librdkafka's first
    // report, end at the small size.
    assert!(
        batches < produced / SMALL,
        "{batches} batches for {produced} messages: batches of {SMALL} alone would need as many"
    );
    check_timeline(&env, &generated.truth).await;
    env.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_stay_small_while_the_pipeline_keeps_up() {
    let env = TestEnv::new("batching_live");
    env.create_topics(1).await;
    let generated = load(72, 100);
    let produced = generated.messages.len() as u64;
    env.run_touchline("migrate", &[]);

    // At 200 messages a second, a batch of the catch-up size would fill in
    // the 2 s linger to about 400; a backlog of 2,000 would take a stall of
    // 10 s, so each batch ends at 100.
    let mut run = Running(
        env.touchline("run")
            .args(batch_args(2_000))
            .stdout(Stdio::piped())
            .spawn()
            .expect("touchline run starts"),
    );
    env.produce_at(&generated, 200).await;

    let events = generated.truth.counts.events;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let written = env
            .count("SELECT count() FROM {db}.v_timeline")
            .await
            .max(0)
            .unsigned_abs();
        if written >= events as u64 {
            break;
        }
        run.assert_running();
        assert!(
            Instant::now() < deadline,
            "{written} of {events} events written after two minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    run.stop(Duration::from_secs(60));
    let mut stdout = String::new();
    run.0
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut stdout)
        .expect("utf-8 output");
    let (_, largest) = consumed(&stdout, produced);

    assert!(
        largest <= SMALL,
        "largest batch {largest}: no backlog of {CATCH_UP} waited, so no batch should pass {SMALL}"
    );
    check_timeline(&env, &generated.truth).await;
    env.drop_database().await;
}
