//! Data-driven tests, one table per rule of `SPEC.md` §2.

use super::*;
use crate::source::{ChatUser, Survey};

/// 2026-03-01T00:00:00Z
const T0: i64 = 1_772_323_200_000;
const NOW: i64 = T0 + 3_600_000;

fn chat() -> ChatbotEvent {
    ChatbotEvent {
        event_id: "5b1c1c1e-0000-4000-8000-000000000001".into(),
        conversation_id: "conv-1".into(),
        occurred_at: T0,
        event_type: "USER_MESSAGE".into(),
        visitor_id: "v-1".into(),
        user: Some(ChatUser::default()),
        surface: "WEB".into(),
        bot_version: "unknown".into(),
        ..Default::default()
    }
}

fn app_event() -> AppEvent {
    AppEvent {
        event_id: "app-evt-1".into(),
        event_name: "screen_view".into(),
        client_ts: "2026-03-01T09:00:00.000+09:00".into(),
        server_ts: T0 * 1000,
        device_id: "dev-1".into(),
        platform: "IOS".into(),
        app_version: "5.2.0".into(),
        ..Default::default()
    }
}

fn social_event() -> SocialEvent {
    SocialEvent {
        id: "1789".into(),
        platform: "INSTAGRAM".into(),
        kind: "MENTION".into(),
        thread_id: "th-9".into(),
        author_handle: "@Somebody".into(),
        created_at_epoch_s: T0 / 1000,
        text: "hello".into(),
        ..Default::default()
    }
}

fn call() -> CallRecord {
    CallRecord {
        call_id: "call-77".into(),
        record_type: "CALL_COMPLETED".into(),
        started_at: T0,
        caller_number: "010-1234-5678".into(),
        queue: "billing".into(),
        wait_seconds: 30,
        talk_seconds: 200,
        hold_seconds: 10,
        wrap_seconds: 20,
        transfers: 0,
        ..Default::default()
    }
}

fn run(record: SourceRecord) -> UnifiedEvent {
    normalise(&record, NOW).expect("normalises")
}

#[test]
fn event_id_per_channel() {
    let mut x = social_event();
    x.platform = "X".into();
    let mut survey = call();
    survey.record_type = "SURVEY".into();
    let cases = [
        (
            SourceRecord::Chatbot(chat()),
            "5b1c1c1e-0000-4000-8000-000000000001",
        ),
        (SourceRecord::App(app_event()), "app-evt-1"),
        (SourceRecord::Social(social_event()), "instagram:1789"),
        (SourceRecord::Social(x), "x:1789"),
        (SourceRecord::CallCenter(call()), "call-77:CALL_COMPLETED"),
        (SourceRecord::CallCenter(survey), "call-77:SURVEY"),
    ];
    for (record, expected) in cases {
        assert_eq!(run(record).event_id, expected);
    }
}

#[test]
fn occurred_at_per_channel() {
    let mut social = social_event();
    social.created_at_epoch_s = T0 / 1000 + 61;
    let mut chatbot = chat();
    chatbot.occurred_at = T0 + 1234;
    let cases = [
        (SourceRecord::Chatbot(chatbot), T0 + 1234),
        (SourceRecord::Social(social), T0 + 61_000),
        (SourceRecord::CallCenter(call()), T0),
    ];
    for (record, expected) in cases {
        assert_eq!(run(record).occurred_at_ms, expected);
    }
}

#[test]
fn app_time_uses_client_clock_within_ten_minutes() {
    // (client_ts, expected occurred_at) with server_ts = T0.
    let cases = [
        ("2026-03-01T09:00:00.000+09:00", T0),
        ("2026-03-01T00:09:59.999Z", T0 + 599_999),
        ("2026-03-01T00:10:00Z", T0 + 600_000),
        ("2026-03-01T00:10:00.001Z", T0),
        ("2026-02-28T23:50:00Z", T0 - 600_000),
        ("2026-02-28T23:49:59Z", T0),
        ("2026-03-01T08:55:02.120+09:00", T0 - 297_880),
        ("not a timestamp", T0),
        ("", T0),
        ("2026-03-01T00:05:00", T0),
    ];
    for (client_ts, expected) in cases {
        let mut e = app_event();
        e.client_ts = client_ts.into();
        assert_eq!(
            run(SourceRecord::App(e)).occurred_at_ms,
            expected,
            "{client_ts}"
        );
    }
}

#[test]
fn topic_per_channel() {
    let chat_cases = [
        (Some("billing.refund"), Topic::Billing),
        (Some("delivery.late"), Topic::Delivery),
        (Some("account"), Topic::Account),
        (Some("Product.Question"), Topic::Product),
        (Some("technical.crash.ios"), Topic::Technical),
        (Some("greeting.hello"), Topic::Other),
        (Some(".billing"), Topic::Other),
        (Some(""), Topic::Other),
        (None, Topic::Other),
    ];
    for (intent, expected) in chat_cases {
        let mut e = chat();
        e.intent = intent.map(Into::into);
        assert_eq!(run(SourceRecord::Chatbot(e)).topic, expected, "{intent:?}");
    }
    let call_cases = [
        ("billing", Topic::Billing),
        ("general", Topic::Other),
        (" Technical ", Topic::Technical),
        ("account", Topic::Account),
    ];
    for (queue, expected) in call_cases {
        let mut e = call();
        e.queue = queue.into();
        assert_eq!(run(SourceRecord::CallCenter(e)).topic, expected, "{queue}");
    }
    let social_cases = [
        (Some("delivery"), Topic::Delivery),
        (Some("other"), Topic::Other),
        (Some("shipping"), Topic::Other),
        (None, Topic::Other),
    ];
    for (topic, expected) in social_cases {
        let mut e = social_event();
        e.topic = topic.map(Into::into);
        assert_eq!(run(SourceRecord::Social(e)).topic, expected, "{topic:?}");
    }
    let app_cases = [
        (Some("product"), Topic::Product),
        (Some("refunds"), Topic::Other),
        (None, Topic::Other),
    ];
    for (topic, expected) in app_cases {
        let mut e = app_event();
        if let Some(topic) = topic {
            e.properties.insert("topic".into(), topic.into());
        }
        assert_eq!(run(SourceRecord::App(e)).topic, expected, "{topic:?}");
    }
}

#[test]
fn contact_id_per_channel() {
    let mut support = app_event();
    support.event_name = "support_request".into();
    let mut brand_reply = social_event();
    brand_reply.author_is_brand = true;
    let mut survey = call();
    survey.record_type = "SURVEY".into();
    let cases = [
        (SourceRecord::Chatbot(chat()), Some("chatbot:conv-1")),
        (SourceRecord::App(app_event()), None),
        (SourceRecord::App(support), Some("app:app-evt-1")),
        (
            SourceRecord::Social(social_event()),
            Some("social:instagram:th-9"),
        ),
        (
            SourceRecord::Social(brand_reply),
            Some("social:instagram:th-9"),
        ),
        (
            SourceRecord::CallCenter(call()),
            Some("call_center:call-77"),
        ),
        (
            SourceRecord::CallCenter(survey),
            Some("call_center:call-77"),
        ),
    ];
    for (record, expected) in cases {
        assert_eq!(run(record).contact_id.as_deref(), expected);
    }
}

#[test]
fn csat_within_one_to_five() {
    for (value, expected, dropped) in [
        (Some(1), Some(1), false),
        (Some(5), Some(5), false),
        (Some(0), None, true),
        (Some(6), None, true),
        (None, None, false),
    ] {
        let mut e = chat();
        e.csat = value;
        let out = run(SourceRecord::Chatbot(e));
        assert_eq!(out.scores.csat, expected, "chatbot csat {value:?}");
        assert_eq!(out.dropped_scores.contains(&ScoreKind::Csat), dropped);

        let mut e = social_event();
        e.kind = "REVIEW".into();
        e.rating = value;
        assert_eq!(
            run(SourceRecord::Social(e)).scores.csat,
            expected,
            "review {value:?}"
        );

        let mut e = call();
        e.record_type = "SURVEY".into();
        e.survey = Some(Survey {
            csat: value,
            ces: None,
            nps: None,
        });
        assert_eq!(
            run(SourceRecord::CallCenter(e)).scores.csat,
            expected,
            "call {value:?}"
        );
    }
    // A rating on a social message that is not a review is not a CSAT answer.
    let mut e = social_event();
    e.rating = Some(5);
    assert_eq!(run(SourceRecord::Social(e)).scores.csat, None);
}

#[test]
fn app_scores_come_from_their_events_only() {
    // (event_name, property, value, expected csat, expected nps, dropped)
    let cases = [
        ("feedback_submitted", "rating", "4", Some(4), None, false),
        ("feedback_submitted", "rating", " 5 ", Some(5), None, false),
        ("feedback_submitted", "rating", "9", None, None, true),
        ("feedback_submitted", "rating", "four", None, None, true),
        ("feedback_submitted", "rating", "4.5", None, None, true),
        ("screen_view", "rating", "4", None, None, false),
        ("nps_answered", "nps", "0", None, Some(0), false),
        ("nps_answered", "nps", "10", None, Some(10), false),
        ("nps_answered", "nps", "11", None, None, true),
        ("nps_answered", "nps", "-1", None, None, true),
        ("feedback_submitted", "nps", "9", None, None, false),
    ];
    for (name, key, value, csat, nps, dropped) in cases {
        let mut e = app_event();
        e.event_name = name.into();
        e.properties.insert(key.into(), value.into());
        let out = run(SourceRecord::App(e));
        assert_eq!(
            (out.scores.csat, out.scores.nps),
            (csat, nps),
            "{name} {key}={value}"
        );
        assert_eq!(
            !out.dropped_scores.is_empty(),
            dropped,
            "{name} {key}={value}"
        );
    }
}

#[test]
fn call_survey_scales() {
    // (ces, nps) -> expected
    let cases = [
        ((Some(1), Some(0)), (Some(1), Some(0))),
        ((Some(7), Some(10)), (Some(7), Some(10))),
        ((Some(0), Some(11)), (None, None)),
        ((Some(8), Some(-1)), (None, None)),
        ((None, None), (None, None)),
    ];
    for ((ces, nps), expected) in cases {
        let mut e = call();
        e.record_type = "SURVEY".into();
        e.survey = Some(Survey {
            csat: None,
            ces,
            nps,
        });
        let out = run(SourceRecord::CallCenter(e));
        assert_eq!(
            (out.scores.ces, out.scores.nps),
            expected,
            "{ces:?} {nps:?}"
        );
    }
}

#[test]
fn sentiment_per_channel() {
    for (value, expected) in [
        (Some(-1.0), Some(-1.0)),
        (Some(0.25), Some(0.25)),
        (Some(1.0), Some(1.0)),
        (Some(1.5), None),
        (Some(f32::NAN), None),
        (None, None),
    ] {
        let mut e = chat();
        e.sentiment = value;
        assert_eq!(
            run(SourceRecord::Chatbot(e)).scores.sentiment,
            expected,
            "{value:?}"
        );
    }
    for (label, expected) in [
        (Some("POSITIVE"), Some(1.0)),
        (Some("NEUTRAL"), Some(0.0)),
        (Some("NEGATIVE"), Some(-1.0)),
        (None, None),
    ] {
        let mut e = social_event();
        e.sentiment_label = label.map(Into::into);
        assert_eq!(
            run(SourceRecord::Social(e)).scores.sentiment,
            expected,
            "{label:?}"
        );
    }
}

#[test]
fn empty_ids_are_rejected() {
    let mut a = chat();
    a.event_id = String::new();
    let mut b = chat();
    b.conversation_id = "  ".into();
    let mut c = app_event();
    c.event_id = String::new();
    let mut d = social_event();
    d.thread_id = String::new();
    let mut e = call();
    e.call_id = String::new();
    let cases = [
        (SourceRecord::Chatbot(a), "event_id"),
        (SourceRecord::Chatbot(b), "conversation_id"),
        (SourceRecord::App(c), "event_id"),
        (SourceRecord::Social(d), "thread_id"),
        (SourceRecord::CallCenter(e), "call_id"),
    ];
    for (record, field) in cases {
        let err = normalise(&record, NOW).unwrap_err();
        assert_eq!(err, NormaliseError::EmptyId { field });
        assert_eq!(err.reason(), "empty_id");
    }
}

#[test]
fn event_times_outside_the_valid_window_are_rejected() {
    // (occurred_at, accepted)
    let cases = [
        (EARLIEST_VALID_MS - 1, false),
        (EARLIEST_VALID_MS, true),
        (NOW + MAX_FUTURE_MS, true),
        (NOW + MAX_FUTURE_MS + 1, false),
        (0, false),
        (i64::MAX, false),
    ];
    for (at, accepted) in cases {
        let mut e = call();
        e.started_at = at;
        let result = normalise(&SourceRecord::CallCenter(e), NOW);
        assert_eq!(result.is_ok(), accepted, "{at}");
        if let Err(err) = result {
            assert_eq!(err.reason(), "timestamp_out_of_range");
        }
    }
}
