//! Which identifiers each channel's events carry.

use std::collections::HashMap;

use super::*;
use crate::source::{ChatUser, LinkedCustomer};

fn chat(user: Option<ChatUser>) -> ChatbotEvent {
    ChatbotEvent {
        event_id: "e-1".into(),
        conversation_id: "conv-1".into(),
        occurred_at: 0,
        event_type: "USER_MESSAGE".into(),
        visitor_id: " v-1 ".into(),
        user,
        surface: "WEB".into(),
        bot_version: "unknown".into(),
        ..Default::default()
    }
}

fn app(user_id: Option<&str>, traits: &[(&str, &str)]) -> AppEvent {
    AppEvent {
        event_id: "a-1".into(),
        event_name: "screen_view".into(),
        client_ts: String::new(),
        server_ts: 0,
        device_id: "dev-1".into(),
        user_id: user_id.map(Into::into),
        platform: "IOS".into(),
        app_version: "5.2.0".into(),
        traits: traits
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>(),
        ..Default::default()
    }
}

fn social(is_brand: bool, linked: Option<LinkedCustomer>) -> SocialEvent {
    SocialEvent {
        id: "1789".into(),
        platform: "INSTAGRAM".into(),
        kind: "DM".into(),
        thread_id: "th-9".into(),
        author_handle: "@Kim_J".into(),
        author_is_brand: is_brand,
        created_at_epoch_s: 0,
        text: "hello".into(),
        linked_customer: linked,
        ..Default::default()
    }
}

fn call(caller: &str, account: Option<&str>) -> CallRecord {
    CallRecord {
        call_id: "call-77".into(),
        record_type: "CALL_COMPLETED".into(),
        started_at: 0,
        caller_number: caller.into(),
        account_id: account.map(Into::into),
        queue: "billing".into(),
        wait_seconds: 0,
        talk_seconds: 0,
        hold_seconds: 0,
        wrap_seconds: 0,
        transfers: 0,
        ..Default::default()
    }
}

fn typed(record: SourceRecord) -> (Vec<String>, Vec<&'static str>) {
    let (ids, rejects) = identifiers_with_rejects(&record);
    assert_eq!(identifiers(&record), ids);
    (
        ids.iter().map(Identifier::as_string).collect(),
        rejects.iter().map(IdentifierError::reason).collect(),
    )
}

#[test]
fn per_channel() {
    let linked = LinkedCustomer {
        account_id: Some("AC9".into()),
        email: Some("Kim@Example.com".into()),
        phone: Some("010-1234-5678".into()),
    };
    let cases: Vec<(SourceRecord, &[&str], &[&str])> = vec![
        (SourceRecord::Chatbot(chat(None)), &["visitor:v-1"], &[]),
        (
            SourceRecord::Chatbot(chat(Some(ChatUser {
                account_id: Some(" AC1 ".into()),
                email: Some(" Minji@Example.COM".into()),
                phone: Some("+82 10 1234 5678".into()),
            }))),
            &[
                "account:AC1",
                "email:minji@example.com",
                "phone:+821012345678",
                "visitor:v-1",
            ],
            &[],
        ),
        (
            SourceRecord::Chatbot(chat(Some(ChatUser {
                account_id: None,
                email: Some("minji@".into()),
                phone: Some("anonymous".into()),
            }))),
            &["visitor:v-1"],
            &["invalid_email", "anonymous_phone"],
        ),
        (SourceRecord::App(app(None, &[])), &["device:dev-1"], &[]),
        (
            SourceRecord::App(app(
                Some("AC2"),
                &[
                    ("email", "a@b.co"),
                    ("phone", "01012345678"),
                    ("name", "Kim"),
                ],
            )),
            &[
                "account:AC2",
                "email:a@b.co",
                "phone:+821012345678",
                "device:dev-1",
            ],
            &[],
        ),
        (
            SourceRecord::App(app(Some(" "), &[("email", "")])),
            &["device:dev-1"],
            &["empty", "empty"],
        ),
        (
            SourceRecord::Social(social(false, None)),
            &["social:instagram:kim_j"],
            &[],
        ),
        (
            SourceRecord::Social(social(false, Some(linked.clone()))),
            &[
                "account:AC9",
                "email:kim@example.com",
                "phone:+821012345678",
                "social:instagram:kim_j",
            ],
            &[],
        ),
        // The brand's own messages carry no customer identifier at all.
        (SourceRecord::Social(social(true, None)), &[], &[]),
        (SourceRecord::Social(social(true, Some(linked))), &[], &[]),
        (
            SourceRecord::CallCenter(call("821012345678", Some("AC3"))),
            &["account:AC3", "phone:+821012345678"],
            &[],
        ),
        (
            SourceRecord::CallCenter(call("Anonymous", None)),
            &[],
            &["anonymous_phone"],
        ),
        (
            SourceRecord::CallCenter(call("010-1234", None)),
            &[],
            &["invalid_phone"],
        ),
    ];
    for (record, ids, rejects) in cases {
        let what = format!("{record:?}");
        let (got_ids, got_rejects) = typed(record);
        assert_eq!(got_ids, ids, "{what}");
        assert_eq!(got_rejects, rejects, "{what}");
    }
}
