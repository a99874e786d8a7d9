//! The rules of `SPEC.md` §4-5, one table per rule.

use super::*;

const DAY: i64 = 24 * 60 * 60 * 1000;

fn fact(contact: &str, channel: Channel, event: &str, at: i64) -> ContactFact {
    ContactFact {
        contact_id: contact.into(),
        channel,
        event_id: event.into(),
        occurred_at_ms: at,
        topic: Topic::Other,
        role: Role::Other,
        opens: false,
        resolves: None,
        hands_off: false,
        wait_seconds: None,
        handle_seconds: None,
        abandoned: false,
        scores: Scores::default(),
        identity_key: None,
    }
}

fn chat(event: &str, at: i64, role: Role) -> ContactFact {
    ContactFact {
        opens: true,
        role,
        ..fact("chatbot:c", Channel::Chatbot, event, at)
    }
}

#[test]
fn a_contact_exists_only_once_an_event_opens_it() {
    let survey_only = fact("call_center:k", Channel::CallCenter, "k:SURVEY", 0);
    let brand_only = ContactFact {
        role: Role::Responder,
        ..fact("social:x:t", Channel::Social, "x:1", 0)
    };
    let completed = ContactFact {
        opens: true,
        wait_seconds: Some(30),
        ..fact("call_center:k", Channel::CallCenter, "k:CALL_COMPLETED", 5)
    };
    let both = [survey_only.clone(), completed.clone()];
    let cases: [(&[ContactFact], bool); 4] = [
        (std::slice::from_ref(&survey_only), false),
        (std::slice::from_ref(&brand_only), false),
        (&both, true),
        (std::slice::from_ref(&completed), true),
    ];
    for (facts, exists) in cases {
        assert_eq!(contact(facts).is_some(), exists, "{facts:?}");
    }
}

#[test]
fn order_and_duplicates_do_not_matter() {
    let facts = vec![
        chat("e3", 30, Role::Responder),
        chat("e1", 10, Role::Other),
        chat("e2", 20, Role::Customer),
        chat("e2", 20, Role::Customer),
    ];
    let mut reversed = facts.clone();
    reversed.reverse();
    let one = contact(&facts).expect("a contact");
    assert_eq!(Some(one.clone()), contact(&reversed));
    assert_eq!(one.events, 3, "a redelivered event counts once");
    assert_eq!(one.started_at_ms, 10);
}

#[test]
fn first_response_per_channel() {
    let call = |wait| ContactFact {
        opens: true,
        wait_seconds: Some(wait),
        ..fact("call_center:k", Channel::CallCenter, "k:CALL_COMPLETED", 0)
    };
    let app = ContactFact {
        opens: true,
        role: Role::Customer,
        ..fact("app:e", Channel::App, "e", 0)
    };
    let cases: Vec<(Vec<ContactFact>, Option<i64>)> = vec![
        (
            vec![
                chat("a", 1_000, Role::Customer),
                chat("b", 3_500, Role::Responder),
            ],
            Some(2_500),
        ),
        (
            vec![
                chat("a", 1_000, Role::Customer),
                chat("b", 3_500, Role::Responder),
                chat("c", 2_000, Role::Customer),
            ],
            Some(2_500),
        ),
        (vec![chat("a", 1_000, Role::Customer)], None),
        // Literally first responder minus first customer: a greeting first is negative.
        (
            vec![
                chat("a", 5_000, Role::Customer),
                chat("b", 1_000, Role::Responder),
            ],
            Some(-4_000),
        ),
        (vec![call(42)], Some(42_000)),
        (vec![app], None),
    ];
    for (facts, expected) in cases {
        assert_eq!(
            contact(&facts).expect("a contact").first_response_ms,
            expected,
            "{facts:?}"
        );
    }
}

#[test]
fn resolution_per_channel() {
    let ended = |event: &str, at, resolved| ContactFact {
        resolves: Some(resolved),
        ..chat(event, at, Role::Other)
    };
    let social = |event: &str, role, resolves| ContactFact {
        opens: role == Role::Customer,
        role,
        resolves,
        ..fact("social:x:t", Channel::Social, event, 0)
    };
    let cases: Vec<(Vec<ContactFact>, bool)> = vec![
        (vec![chat("a", 0, Role::Customer)], false),
        (vec![ended("a", 0, true)], true),
        (vec![ended("a", 0, true), ended("b", 10, false)], false),
        (
            vec![
                social("1", Role::Customer, None),
                social("2", Role::Responder, Some(true)),
                social("3", Role::Responder, None),
            ],
            true,
        ),
        (
            vec![
                social("1", Role::Customer, None),
                social("2", Role::Responder, None),
            ],
            false,
        ),
    ];
    for (facts, expected) in cases {
        assert_eq!(
            contact(&facts).expect("a contact").resolved,
            expected,
            "{facts:?}"
        );
    }
}

#[test]
fn topic_is_the_first_that_is_not_other() {
    let with_topic = |event: &str, at, topic| ContactFact {
        topic,
        ..chat(event, at, Role::Customer)
    };
    let cases: Vec<(Vec<ContactFact>, Topic)> = vec![
        (
            vec![
                with_topic("a", 0, Topic::Other),
                with_topic("b", 5, Topic::Billing),
            ],
            Topic::Billing,
        ),
        (
            vec![
                with_topic("a", 9, Topic::Delivery),
                with_topic("b", 5, Topic::Billing),
            ],
            Topic::Billing,
        ),
        (
            vec![
                with_topic("b", 5, Topic::Delivery),
                with_topic("a", 5, Topic::Account),
            ],
            Topic::Account,
        ),
        (vec![with_topic("a", 0, Topic::Other)], Topic::Other),
    ];
    for (facts, expected) in cases {
        assert_eq!(
            contact(&facts).expect("a contact").topic,
            expected,
            "{facts:?}"
        );
    }
}

fn summary(id: &str, channel: Channel, topic: Topic, at: i64, resolved: bool) -> Contact {
    Contact {
        contact_id: id.into(),
        channel,
        topic,
        started_at_ms: at,
        resolved,
        handed_off: false,
        first_response_ms: None,
        csat: None,
        ces: None,
        nps: None,
        handle_seconds: None,
        abandoned: false,
        identity_key: None,
        events: 1,
    }
}

#[test]
fn journeys_split_on_topic_and_on_gaps_over_seven_days() {
    use Channel::{App, CallCenter, Chatbot, Social};
    let contacts = vec![
        summary("chatbot:1", Chatbot, Topic::Billing, 0, false),
        summary("call_center:2", CallCenter, Topic::Billing, DAY, false),
        summary("social:x:3", Social, Topic::Billing, DAY + 7 * DAY, true),
        summary(
            "chatbot:4",
            Chatbot,
            Topic::Billing,
            DAY + 14 * DAY + 1,
            true,
        ),
        summary("app:5", App, Topic::Delivery, 2 * DAY, true),
    ];
    let journeys = journeys(&contacts);
    type Shape<'a> = (Topic, Vec<&'a str>, usize, usize, bool, bool);
    let shape: Vec<Shape<'_>> = journeys
        .iter()
        .map(|j| {
            (
                j.topic,
                j.contact_ids.iter().map(String::as_str).collect(),
                j.channel_count,
                j.channel_switches,
                j.resolved,
                j.one_contact_resolution,
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (
                Topic::Billing,
                vec!["chatbot:1", "call_center:2", "social:x:3"],
                3,
                2,
                true,
                false
            ),
            (Topic::Billing, vec!["chatbot:4"], 1, 0, true, true),
            (Topic::Delivery, vec!["app:5"], 1, 0, true, true),
        ]
    );
    assert_eq!(journeys[0].started_at_ms, 0);
    assert_ne!(journeys[0].journey_id, journeys[1].journey_id);
}

#[test]
fn journeys_do_not_depend_on_contact_order_and_count_switches() {
    use Channel::{CallCenter, Chatbot};
    let mut contacts = vec![
        summary("chatbot:1", Chatbot, Topic::Account, 0, false),
        summary("chatbot:2", Chatbot, Topic::Account, 10, false),
        summary("call_center:3", CallCenter, Topic::Account, 20, false),
        summary("chatbot:4", Chatbot, Topic::Account, 30, false),
    ];
    let forward = journeys(&contacts);
    contacts.reverse();
    assert_eq!(forward, journeys(&contacts));
    assert_eq!(forward.len(), 1);
    assert_eq!(
        (forward[0].channel_count, forward[0].channel_switches),
        (2, 2)
    );
    assert!(!forward[0].resolved && !forward[0].one_contact_resolution);
}
