//! Schema evolution and bad input, on real Avro bytes.

use apache_avro::reader::datum::GenericDatumReader;
use serde_json::json;

use super::*;
use crate::encoder::encode_framed;
use crate::registry::StaticRegistry;

/// Registry ids of the upstream versions in these tests.
fn id_of(name: &str) -> u32 {
    let position = upstream::ALL
        .iter()
        .position(|s| s.name == name)
        .expect("known version");
    u32::try_from(position).expect("small") + 1
}

fn decoder() -> Decoder<StaticRegistry> {
    let schemas = upstream::ALL
        .iter()
        .map(|s| (id_of(s.name), s.text.to_owned()));
    Decoder::new(StaticRegistry::new(schemas), DEFAULT_MAX_MESSAGE_BYTES)
}

fn schema(name: &str) -> Schema {
    Schema::parse_str(upstream::by_name(name).expect("known version").text).expect("valid")
}

fn framed(name: &str, document: serde_json::Value) -> Vec<u8> {
    encode_framed(id_of(name), &schema(name), document).expect("encodes")
}

fn chatbot_v1() -> serde_json::Value {
    json!({
        "event_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "conversation_id": "conv-1",
        "occurred_at": 1_772_323_200_000_i64,
        "event_type": "USER_MESSAGE",
        "visitor_id": "v-1",
        "user": {"account_id": "A-1", "email": null, "phone": "010-1234-5678"},
        "surface": "KAKAO",
        "intent": "billing.refund",
        "intent_confidence": 0.75,
        "text": "refund please",
        "resolved": null,
        "csat": null,
        "sentiment": -0.5
    })
}

fn call_v1() -> serde_json::Value {
    json!({
        "call_id": "call-1",
        "record_type": "SURVEY",
        "started_at": 1_772_323_200_000_i64,
        "ani": "+82 10 1234 5678",
        "account_id": null,
        "queue": "billing",
        "agent_id": "agent-7",
        "wait_seconds": 12, "talk_seconds": 300, "hold_seconds": 5, "wrap_seconds": 30,
        "transfers": 1,
        "disposition": "RESOLVED",
        "survey": {"csat": 4, "ces": 6, "nps": 9}
    })
}

fn call_v2() -> serde_json::Value {
    let mut v = call_v1();
    let object = v.as_object_mut().expect("object");
    let number = object.remove("ani").expect("ani");
    object.insert("caller_number".into(), number);
    object.insert("recording_consent".into(), json!(true));
    v
}

#[tokio::test]
async fn chatbot_v1_and_v2_decode_on_one_topic() {
    let decoder = decoder();
    let mut v2 = chatbot_v1();
    let object = v2.as_object_mut().expect("object");
    object.insert("surface".into(), json!("LINE"));
    object.insert("language".into(), json!("ko"));
    object.insert("bot_version".into(), json!("2.4.1"));

    let SourceRecord::Chatbot(old) = decoder
        .decode(Channel::Chatbot, &framed("chatbot.v1", chatbot_v1()))
        .await
        .expect("v1 decodes")
    else {
        panic!("not a chatbot record")
    };
    let SourceRecord::Chatbot(new) = decoder
        .decode(Channel::Chatbot, &framed("chatbot.v2", v2))
        .await
        .expect("v2 decodes")
    else {
        panic!("not a chatbot record")
    };
    assert_eq!(old.surface, "KAKAO");
    assert_eq!(old.language, None, "v1 has no language: reader default");
    assert_eq!(
        old.bot_version, "unknown",
        "v1 has no bot_version: reader default"
    );
    assert_eq!(
        old.user.as_ref().and_then(|u| u.account_id.as_deref()),
        Some("A-1")
    );
    assert_eq!(old.sentiment, Some(-0.5));
    assert_eq!(old.occurred_at, 1_772_323_200_000);
    assert_eq!(new.surface, "LINE");
    assert_eq!(new.language.as_deref(), Some("ko"));
    assert_eq!(new.bot_version, "2.4.1");
    assert_eq!(new.event_id, old.event_id);
    assert_eq!(decoder.cached_schemas(), 2);
}

#[tokio::test]
async fn callcenter_v1_written_is_read_as_v2() {
    let record = decoder()
        .decode(Channel::CallCenter, &framed("callcenter.v1", call_v1()))
        .await
        .expect("v1 decodes");
    let SourceRecord::CallCenter(call) = record else {
        panic!("not a call record")
    };
    assert_eq!(
        call.caller_number, "+82 10 1234 5678",
        "ani resolves through the alias"
    );
    assert!(!call.recording_consent, "absent in v1: reader default");
    assert_eq!(call.disposition.as_deref(), Some("RESOLVED"));
    assert_eq!(
        call.survey.map(|s| (s.csat, s.ces, s.nps)),
        Some((Some(4), Some(6), Some(9)))
    );
}

#[tokio::test]
async fn callcenter_v2_written_is_read_as_v2() {
    let record = decoder()
        .decode(Channel::CallCenter, &framed("callcenter.v2", call_v2()))
        .await
        .expect("v2 decodes");
    let SourceRecord::CallCenter(call) = record else {
        panic!("not a call record")
    };
    assert_eq!(call.caller_number, "+82 10 1234 5678");
    assert!(call.recording_consent);
}

#[tokio::test]
async fn app_and_social_decode() {
    let decoder = decoder();
    let app = json!({
        "event_id": "e-1", "event_name": "feedback_submitted",
        "client_ts": "2026-03-01T09:15:02.120+09:00",
        "server_ts": 1_772_324_102_120_000_i64, "device_id": "d-1", "user_id": "A-1",
        "platform": "ANDROID", "app_version": "5.0", "screen": null,
        "traits": {"email": "Kim@Example.com"}, "properties": {"rating": "5", "topic": "delivery"}
    });
    let SourceRecord::App(app) = decoder
        .decode(Channel::App, &framed("app.v1", app))
        .await
        .expect("app decodes")
    else {
        panic!("not an app event")
    };
    assert_eq!(app.server_ts, 1_772_324_102_120_000);
    assert_eq!(app.platform, "ANDROID");
    assert_eq!(
        app.traits.get("email").map(String::as_str),
        Some("Kim@Example.com")
    );
    assert_eq!(app.properties.get("rating").map(String::as_str), Some("5"));

    let social = json!({
        "id": "m-1", "platform": "X", "kind": "REVIEW", "thread_id": "t-1", "in_reply_to": null,
        "author_handle": "@Kim", "author_is_brand": false, "created_at_epoch_s": 1_772_323_200_i64,
        "text": "slow delivery", "lang": "ko", "sentiment_label": "NEGATIVE", "rating": 2,
        "topic": "delivery", "resolved": null,
        "linked_customer": {"account_id": null, "email": "kim@example.com", "phone": null}
    });
    let SourceRecord::Social(social) = decoder
        .decode(Channel::Social, &framed("social.v1", social))
        .await
        .expect("social decodes")
    else {
        panic!("not a social event")
    };
    assert_eq!(social.sentiment_label.as_deref(), Some("NEGATIVE"));
    assert_eq!(social.rating, Some(2));
    assert_eq!(
        social.linked_customer.and_then(|c| c.email).as_deref(),
        Some("kim@example.com")
    );
}

/// The reverse direction: a consumer still on `callcenter.v1` reading data
/// written with v2. Avro resolves renames through the *reader's* aliases only,
/// and v1 has none for `caller_number`; the failure must be clean, and is why
/// Touchline reads with the newest version.
#[test]
fn callcenter_v2_written_read_as_v1_needs_the_newer_reader() {
    let framed = framed("callcenter.v2", call_v2());
    let (writer, reader) = (schema("callcenter.v2"), schema("callcenter.v1"));
    let result = GenericDatumReader::builder(&writer)
        .reader_schema(&reader)
        .build()
        .and_then(|datum_reader| datum_reader.read_value(&mut &framed[5..]));
    let message = result
        .expect_err("v1 cannot read caller_number")
        .to_string();
    assert!(message.contains("ani"), "{message}");
}

#[tokio::test]
async fn bad_input_gets_a_typed_reason() {
    let decoder = decoder();
    let good = framed("callcenter.v2", call_v2());
    let mut bad_enum = good.clone();
    // call_id "call-1" is 1 length byte + 6 bytes; the enum index follows.
    assert_eq!(bad_enum[5 + 7], 6, "SURVEY is symbol 3, zigzag 6");
    bad_enum[5 + 7] = 2 * 9;
    let mut trailing = good.clone();
    trailing.push(0);
    let mut unknown = good.clone();
    unknown[1..5].copy_from_slice(&999_u32.to_be_bytes());
    let mut magic = good.clone();
    magic[0] = 1;

    let cases: Vec<(Channel, Vec<u8>, &str)> = vec![
        (
            Channel::CallCenter,
            good[..good.len() - 3].to_vec(),
            "truncated_avro",
        ),
        (Channel::CallCenter, good[..3].to_vec(), "truncated_frame"),
        (Channel::CallCenter, magic, "bad_magic"),
        (Channel::CallCenter, unknown, "unknown_schema"),
        (Channel::App, good.clone(), "wrong_schema_for_topic"),
        (Channel::CallCenter, bad_enum, "invalid_enum"),
        (Channel::CallCenter, trailing, "trailing_bytes"),
        (
            Channel::CallCenter,
            vec![0; DEFAULT_MAX_MESSAGE_BYTES + 1],
            "too_large",
        ),
    ];
    for (channel, bytes, reason) in cases {
        let error = decoder.decode(channel, &bytes).await.expect_err(reason);
        assert_eq!(error.reason(), reason, "{error}");
        assert!(!error.is_retryable(), "{error}");
    }
    decoder
        .decode(Channel::CallCenter, &good)
        .await
        .expect("the good message still decodes");
}

/// Regression: apache-avro reads a union index past the end of the input as
/// `null`, so a body cut right before trailing optional fields decoded as a
/// record with those fields empty. Every cut must be reported as truncation.
#[tokio::test]
async fn every_truncation_is_caught_even_before_optional_fields() {
    let decoder = decoder();
    let mut v2 = chatbot_v1();
    v2.as_object_mut()
        .expect("object")
        .insert("bot_version".into(), json!("x"));
    for (name, document) in [
        ("chatbot.v1", chatbot_v1()),
        ("chatbot.v2", v2),
        ("callcenter.v2", call_v2()),
    ] {
        let good = framed(name, document);
        for cut in 5..good.len() {
            let error = decoder
                .decode(channel_of(name), &good[..cut])
                .await
                .expect_err("a cut-short body does not decode");
            assert_eq!(
                error.reason(),
                "truncated_avro",
                "{name} cut at {cut}: {error}"
            );
        }
    }
}

fn channel_of(name: &str) -> Channel {
    upstream::by_name(name).expect("known").channel
}

#[tokio::test]
async fn registry_down_is_retryable_not_bad_data() {
    let decoder = decoder();
    decoder.registry().set_down(true);
    let bytes = framed(
        "social.v1",
        json!({
            "id": "m-1", "platform": "X", "kind": "MENTION", "thread_id": "t-1",
            "author_handle": "kim", "author_is_brand": false, "created_at_epoch_s": 1_772_323_200_i64,
            "text": "hi"
        }),
    );
    let error = decoder
        .decode(Channel::Social, &bytes)
        .await
        .expect_err("down");
    assert!(error.is_retryable());
    assert_eq!(error.reason(), "registry_unavailable");
    decoder.registry().set_down(false);
    decoder
        .decode(Channel::Social, &bytes)
        .await
        .expect("up again");
}

/// A dead letter's message says which field went wrong and how.
#[tokio::test]
async fn messages_name_the_field_and_the_fault() {
    let decoder = decoder();
    let good = framed("callcenter.v2", call_v2());
    let mut bad_enum = good.clone();
    bad_enum[5 + 7] = 2 * 9;
    let error = decoder
        .decode(Channel::CallCenter, &bad_enum)
        .await
        .expect_err("symbol 9 of 4");
    let message = error.to_string();
    assert!(
        message.contains("field `record_type`") && message.contains("enum index 9"),
        "{message}"
    );
    let error = decoder
        .decode(Channel::CallCenter, &good[..good.len() - 1])
        .await
        .expect_err("cut");
    let message = error.to_string();
    assert!(message.contains("field `recording_consent`"), "{message}");

    let mut v1 = chatbot_v1();
    v1.as_object_mut().expect("object").insert(
        "user".into(),
        json!({"account_id": "A-1", "email": "k@example.com", "phone": null}),
    );
    let mut bytes = framed("chatbot.v1", v1);
    let at = bytes
        .windows(b"k@example.com".len())
        .position(|w| w == b"k@example.com")
        .expect("the email is in the body");
    bytes[at] = 0xff;
    let error = decoder
        .decode(Channel::Chatbot, &bytes)
        .await
        .expect_err("not UTF-8");
    assert_eq!(error.reason(), "invalid_avro");
    let message = error.to_string();
    assert!(
        message.contains("field `user.email`") && message.contains("UTF-8"),
        "{message}"
    );
}
