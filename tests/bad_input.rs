//! Bad input end to end: every kind of malformed or invalid message ends in
//! `dead_letters` with its typed reason, its key and its exact bytes, while
//! the good messages around it are written; out-of-scale scores are dropped
//! but the event kept; and `touchline replay` brings a dead letter back once
//! its cause is fixed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use apache_avro::Schema;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use touchline_avro::encoder::encode_framed;
use touchline_avro::registry::value_subject;
use touchline_avro::{upstream, HttpRegistry};
use touchline_model::Channel;
use touchline_tests::{now_ms, TestEnv};

const GOOD_ID: &str = "6f1c1c1e-0000-4000-8000-00000000b001";
const LARGE_ID: &str = "6f1c1c1e-0000-4000-8000-00000000b002";

/// A message to produce, and the dead-letter reason it must get (`None`: it
/// must reach the timeline).
struct Case {
    key: &'static str,
    channel: Channel,
    bytes: Vec<u8>,
    reason: Option<&'static str>,
}

fn chatbot(event_id: &str, occurred_at: i64) -> Value {
    json!({
        "event_id": event_id, "conversation_id": "conv-bad-input", "occurred_at": occurred_at,
        "event_type": "SURVEY_RESPONSE", "visitor_id": "v-bad-input", "surface": "WEB",
        "csat": 9, "sentiment": 2.0, "bot_version": "3"
    })
}

fn call(record_type: &str, started_at: i64) -> Value {
    json!({
        "call_id": "call-bad-input", "record_type": record_type, "started_at": started_at,
        "caller_number": "010-1234-5678", "queue": "billing",
        "wait_seconds": 1, "talk_seconds": 2, "hold_seconds": 0, "wrap_seconds": 3, "transfers": 0
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_becomes_typed_dead_letters_and_replay_recovers_them() {
    let env = TestEnv::new("bad_input");
    env.create_topics(1).await;
    let registry = HttpRegistry::new(&env.stack.registry_url, None).expect("registry client");
    let mut ids = BTreeMap::new();
    for schema in upstream::ALL {
        let subject = value_subject(&env.topic(schema.channel));
        let id = registry
            .register(&subject, schema.text)
            .await
            .expect("registered");
        ids.insert(schema.name, id);
    }
    let frame = |name: &str, document: Value| {
        let schema =
            Schema::parse_str(upstream::by_name(name).expect("known").text).expect("valid");
        encode_framed(ids[name], &schema, document).expect("encodes")
    };
    let now = now_ms();
    let good_chat = frame("chatbot.v2", chatbot(GOOD_ID, now - 60_000));
    let good_call = frame("callcenter.v2", call("SURVEY", now - 60_000));
    let mut invalid_enum = good_call.clone();
    // call_id "call-bad-input" is 1 length byte + 14 bytes; the enum follows.
    assert_eq!(invalid_enum[5 + 15], 6, "SURVEY is symbol 3 (zigzag 6)");
    invalid_enum[5 + 15] = 2 * 9;
    let mut magic = good_chat.clone();
    magic[0] = 1;
    let mut unknown = good_chat.clone();
    unknown[1..5].copy_from_slice(&999_999_u32.to_be_bytes());
    let mut large = chatbot(LARGE_ID, now - 60_000);
    large["text"] = json!("x".repeat(5_000));
    let app_document = json!({
        "event_id": "bad-input-app", "event_name": "screen_view",
        "client_ts": "2026-03-01T09:00:00+09:00", "server_ts": (now - 60_000) * 1000,
        "device_id": "d-1", "platform": "IOS", "app_version": "1"
    });

    let cases = vec![
        Case {
            key: "good",
            channel: Channel::Chatbot,
            bytes: good_chat.clone(),
            reason: None,
        },
        Case {
            key: "empty-id",
            channel: Channel::CallCenter,
            bytes: frame("callcenter.v2", {
                let mut v = call("CALL_COMPLETED", now - 60_000);
                v["call_id"] = json!("  ");
                v
            }),
            reason: Some("empty_id"),
        },
        Case {
            key: "before-2000",
            channel: Channel::CallCenter,
            bytes: frame("callcenter.v1", {
                let mut v = call("CALL_COMPLETED", 946_684_799_000);
                let number = v
                    .as_object_mut()
                    .expect("object")
                    .remove("caller_number")
                    .expect("number");
                v["ani"] = number;
                v
            }),
            reason: Some("timestamp_out_of_range"),
        },
        Case {
            key: "future",
            channel: Channel::CallCenter,
            bytes: frame(
                "callcenter.v2",
                call("CALL_ABANDONED", now + 2 * 86_400_000),
            ),
            reason: Some("timestamp_out_of_range"),
        },
        Case {
            key: "truncated",
            channel: Channel::Chatbot,
            bytes: good_chat[..good_chat.len() - 3].to_vec(),
            reason: Some("truncated_avro"),
        },
        Case {
            key: "magic",
            channel: Channel::Chatbot,
            bytes: magic,
            reason: Some("bad_magic"),
        },
        Case {
            key: "unknown-schema",
            channel: Channel::Chatbot,
            bytes: unknown,
            reason: Some("unknown_schema"),
        },
        Case {
            key: "other-topic",
            channel: Channel::Chatbot,
            bytes: frame("app.v1", app_document),
            reason: Some("wrong_schema_for_topic"),
        },
        Case {
            key: "invalid-enum",
            channel: Channel::CallCenter,
            bytes: invalid_enum,
            reason: Some("invalid_enum"),
        },
        Case {
            key: "too-large",
            channel: Channel::Chatbot,
            bytes: frame("chatbot.v2", large),
            reason: Some("too_large"),
        },
    ];
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &env.stack.brokers)
        .create()
        .expect("producer");
    for case in &cases {
        let topic = env.topic(case.channel);
        producer
            .send(
                FutureRecord::to(&topic).key(case.key).payload(&case.bytes),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("cannot produce {}: {e}", case.key));
    }

    env.run_touchline("migrate", &[]);
    let mut small = env.touchline("run");
    small.args(["--until-caught-up", "--max-message-bytes", "4096"]);
    let output = small.output().expect("touchline runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Every bad message is a dead letter with its reason, key and exact bytes.
    let rows = env
        .query("SELECT key, reason, hex(payload) AS payload FROM {db}.dead_letters")
        .await;
    let letters: BTreeMap<String, (String, String)> = rows
        .iter()
        .map(|r| {
            let field = |name: &str| r[name].as_str().expect("string").to_owned();
            (field("key"), (field("reason"), field("payload")))
        })
        .collect();
    assert_eq!(rows.len(), letters.len(), "one dead letter per message");
    for case in &cases {
        match (case.reason, letters.get(case.key)) {
            (None, None) => {}
            (Some(reason), Some((got, payload))) => {
                assert_eq!(got, reason, "{}", case.key);
                assert_eq!(
                    *payload,
                    hex(&case.bytes),
                    "{}: the raw bytes are kept",
                    case.key
                );
            }
            (want, got) => panic!("{}: want dead letter {want:?}, got {got:?}", case.key),
        }
    }

    // The good event is kept, its out-of-scale scores dropped.
    let good = env
        .query(&format!(
            "SELECT csat, sentiment FROM {{db}}.v_timeline WHERE event_id = '{GOOD_ID}'"
        ))
        .await;
    assert_eq!(good.len(), 1, "the good event is on the timeline");
    assert_eq!(good[0]["csat"], Value::Null, "csat 9 is outside 1..5");
    assert_eq!(
        good[0]["sentiment"],
        Value::Null,
        "sentiment 2 is outside -1..1"
    );

    // Raise the limit, replay the too-large letter: it reaches the timeline.
    let replayed = env.run_touchline("replay", &["--reason", "too_large"]);
    assert!(replayed.contains("replayed 1 dead letters"), "{replayed}");
    env.run_touchline("run", &["--until-caught-up"]);
    let large = env
        .query(&format!(
            "SELECT count() AS n FROM {{db}}.v_timeline WHERE event_id = '{LARGE_ID}'"
        ))
        .await;
    assert_eq!(large[0]["n"].to_string().trim_matches('"'), "1");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = env
            .query("SELECT count() AS n FROM {db}.dead_letters WHERE key = 'too-large'")
            .await;
        if left[0]["n"].to_string().trim_matches('"') == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replayed dead letter is still listed"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    env.drop_database().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
