//! The hard cases of `SPEC.md` §3, one test each, through the public API.

use std::collections::{BTreeMap, HashMap};

use touchline_model::identity::{customer_id, identifiers, CustomerId, Identifier, IdentityGraph};
use touchline_model::source::{AppEvent, CallRecord, ChatUser, ChatbotEvent, SourceRecord};

fn id(typed: &str) -> Identifier {
    Identifier::parse(typed).expect("valid identifier")
}

fn ids(typed: &[&str]) -> Vec<Identifier> {
    typed.iter().map(|t| id(t)).collect()
}

fn customer(typed: &str) -> CustomerId {
    customer_id(&id(typed))
}

/// Identifier → anchor, as typed strings, for every identifier given.
fn anchors(graph: &IdentityGraph, typed: &[&str]) -> BTreeMap<String, String> {
    typed
        .iter()
        .map(|t| {
            let anchor = graph.anchor_of(&id(t)).expect("linked");
            ((*t).to_owned(), anchor.as_string())
        })
        .collect()
}

/// `take_changes` as typed identifier → anchor's customer, sorted.
fn changes(graph: &mut IdentityGraph) -> BTreeMap<String, CustomerId> {
    graph
        .take_changes()
        .into_iter()
        .map(|(id, c)| (id.as_string(), c))
        .collect()
}

fn chat(visitor: &str, email: Option<&str>) -> SourceRecord {
    SourceRecord::Chatbot(ChatbotEvent {
        event_id: format!("e-{visitor}"),
        conversation_id: "conv-1".into(),
        occurred_at: 0,
        event_type: "USER_MESSAGE".into(),
        visitor_id: visitor.into(),
        user: Some(ChatUser {
            account_id: None,
            email: email.map(Into::into),
            phone: None,
        }),
        surface: "WEB".into(),
        bot_version: "unknown".into(),
        ..Default::default()
    })
}

fn call(call_id: &str, caller: &str) -> SourceRecord {
    SourceRecord::CallCenter(CallRecord {
        call_id: call_id.into(),
        record_type: "CALL_COMPLETED".into(),
        started_at: 0,
        caller_number: caller.into(),
        queue: "billing".into(),
        wait_seconds: 0,
        talk_seconds: 0,
        hold_seconds: 0,
        wrap_seconds: 0,
        transfers: 0,
        ..Default::default()
    })
}

fn app(device: &str, phone: &str) -> SourceRecord {
    SourceRecord::App(AppEvent {
        event_id: format!("a-{device}"),
        event_name: "screen_view".into(),
        client_ts: String::new(),
        server_ts: 0,
        device_id: device.into(),
        platform: "IOS".into(),
        app_version: "5.2.0".into(),
        traits: HashMap::from([("phone".to_owned(), phone.to_owned())]),
        ..Default::default()
    })
}

#[test]
fn two_accounts_sharing_a_device_and_a_phone_split_by_nearness() {
    let mut g = IdentityGraph::new();
    // Household: AC1's app on the shared tablet, AC2's phone, and one event
    // (the tablet's app with AC2's phone in its traits) joining the two.
    g.link(&ids(&[
        "account:AC1",
        "email:minji@example.com",
        "device:tablet",
    ]));
    g.link(&ids(&["account:AC2", "phone:+821012345678"]));
    g.link(&ids(&["device:tablet", "phone:+821012345678"]));
    g.link(&ids(&["visitor:v-1", "device:tablet"]));
    assert_eq!(
        anchors(
            &g,
            &[
                "account:AC1",
                "account:AC2",
                "email:minji@example.com",
                "device:tablet",
                "phone:+821012345678",
                "visitor:v-1",
            ]
        ),
        BTreeMap::from([
            ("account:AC1".into(), "account:AC1".into()),
            ("account:AC2".into(), "account:AC2".into()),
            ("email:minji@example.com".into(), "account:AC1".into()),
            // 1 hop from AC1, 2 from AC2.
            ("device:tablet".into(), "account:AC1".into()),
            // 1 hop from AC2, 2 from AC1.
            ("phone:+821012345678".into(), "account:AC2".into()),
            // 2 hops from AC1 (through the tablet), 3 from AC2.
            ("visitor:v-1".into(), "account:AC1".into()),
        ])
    );
}

#[test]
fn two_accounts_at_the_same_distance_tie_to_the_first_sorting() {
    let mut g = IdentityGraph::new();
    // `account:AC10` sorts before `account:AC9`: normal forms compare as text.
    g.link(&ids(&[
        "account:AC9",
        "device:tablet",
        "phone:+821012345678",
    ]));
    g.link(&ids(&[
        "account:AC10",
        "device:tablet",
        "phone:+821012345678",
    ]));
    g.link(&ids(&["visitor:v-1", "phone:+821012345678"]));
    let got = anchors(&g, &["device:tablet", "phone:+821012345678", "visitor:v-1"]);
    assert!(got.values().all(|a| a == "account:AC10"), "{got:?}");
    assert_eq!(
        g.customer_of(&id("account:AC9")),
        Some(customer("account:AC9"))
    );
    // The order of the links does not matter.
    let mut h = IdentityGraph::new();
    h.link(&ids(&["visitor:v-1", "phone:+821012345678"]));
    h.link(&ids(&[
        "account:AC10",
        "device:tablet",
        "phone:+821012345678",
    ]));
    h.link(&ids(&[
        "account:AC9",
        "device:tablet",
        "phone:+821012345678",
    ]));
    assert_eq!(changes(&mut g), changes(&mut h));
}

#[test]
fn one_email_in_three_letter_cases_is_one_identifier() {
    let mut g = IdentityGraph::new();
    for (visitor, email) in [
        ("v-1", "minji.kim42@example.com"),
        ("v-2", "Minji.Kim42@Example.com"),
        ("v-3", "  MINJI.KIM42@EXAMPLE.COM "),
    ] {
        g.link(&identifiers(&chat(visitor, Some(email))));
    }
    assert_eq!(g.len(), 4);
    let got = changes(&mut g);
    let c = customer("email:minji.kim42@example.com");
    assert_eq!(got.len(), 4);
    assert!(got.values().all(|v| *v == c), "{got:?}");
}

#[test]
fn one_phone_in_four_formats_is_one_identifier() {
    let mut g = IdentityGraph::new();
    for (call_id, caller) in [
        ("c-1", "010-1234-5678"),
        ("c-2", "+82 10 1234 5678"),
        ("c-3", "821012345678"),
        ("c-4", "01012345678"),
    ] {
        g.link(&identifiers(&call(call_id, caller)));
    }
    g.link(&identifiers(&app("tablet", "+82-10-1234-5678")));
    assert_eq!(g.len(), 2);
    assert_eq!(
        g.anchor_of(&id("device:tablet")),
        Some(id("phone:+821012345678"))
    );
}

#[test]
fn anchor_without_account_is_email_then_phone_social_device_visitor() {
    let all = [
        "visitor:v-1",
        "device:d-1",
        "social:instagram:kim_j",
        "phone:+821012345678",
        "email:minji@example.com",
        "email:a.minji@example.com",
    ];
    // Drop the first-ranked identifier each time: the next one anchors.
    for first in 0..all.len() {
        let kept = &all[..all.len() - first];
        let mut g = IdentityGraph::new();
        // A chain, so that the anchor is not just a neighbour of everything.
        for pair in kept.windows(2) {
            g.link(&ids(pair));
        }
        g.link(&ids(&kept[..1]));
        let mut sorted = ids(kept);
        sorted.sort();
        for t in kept {
            assert_eq!(g.anchor_of(&id(t)).as_ref(), sorted.first(), "{kept:?}");
        }
    }
    let mut g = IdentityGraph::new();
    g.link(&ids(&all));
    assert_eq!(
        g.anchor_of(&id("visitor:v-1")),
        Some(id("email:a.minji@example.com"))
    );
}

#[test]
fn late_event_merges_then_a_second_account_splits() {
    let mut g = IdentityGraph::new();
    let (email, device, phone, ac1, ac2) = (
        "email:minji@example.com",
        "device:tablet",
        "phone:+821012345678",
        "account:AC1",
        "account:AC2",
    );
    // Two customers: an anonymous app user, and a caller with an account.
    g.link(&ids(&[email, device]));
    g.link(&ids(&[ac1, phone]));
    assert_eq!(
        changes(&mut g),
        BTreeMap::from([
            (email.to_owned(), customer(email)),
            (device.to_owned(), customer(email)),
            (ac1.to_owned(), customer(ac1)),
            (phone.to_owned(), customer(ac1)),
        ])
    );
    // A late app event with the phone in its traits merges them: everything
    // the anonymous customer had moves to AC1.
    g.link(&ids(&[device, phone]));
    assert_eq!(
        changes(&mut g),
        BTreeMap::from([
            (email.to_owned(), customer(ac1)),
            (device.to_owned(), customer(ac1)),
        ])
    );
    assert_eq!(
        g.customer_of_event(&ids(&[device, email])),
        Some(customer(ac1))
    );
    // Then the email logs in to the chatbot as AC2: a second account splits
    // the customer. The email is 1 hop from AC2 and 3 from AC1; the tablet
    // is 2 hops from each, and AC1 sorts first.
    g.link(&ids(&[ac2, email]));
    assert_eq!(
        changes(&mut g),
        BTreeMap::from([
            (ac2.to_owned(), customer(ac2)),
            (email.to_owned(), customer(ac2)),
        ])
    );
    assert_eq!(g.customer_of(&id(device)), Some(customer(ac1)));
    // An event's customer is that of its first identifier in anchor order.
    assert_eq!(
        g.customer_of_event(&ids(&[device, email])),
        Some(customer(ac2))
    );
    assert_eq!(
        g.customer_of_event(&ids(&[device, phone])),
        Some(customer(ac1))
    );
    assert_eq!(g.customer_of_event(&[]), None);
    assert!(g.take_changes().is_empty());
}
