//! The generated stream and its truth, without Kafka.

use std::collections::{BTreeMap, BTreeSet};

use touchline_loadgen::truth::{IdKind, ScoreName};
use touchline_loadgen::{
    generate, BadKind, Encoder, Generated, GroundTruth, Payload, Scenario, SchemaIds,
};
use touchline_model::{Channel, Topic};

/// 2026-01-01T00:00:00Z
const START_MS: i64 = 1_767_225_600_000;

fn scenario(seed: u64, customers: usize) -> Scenario {
    Scenario {
        duplicate_rate: 0.05,
        bad_rate: 0.01,
        ..Scenario::new(seed, customers, START_MS, 14)
    }
}

fn generated(seed: u64, customers: usize) -> Generated {
    generate(&scenario(seed, customers)).expect("valid scenario")
}

fn encode_all(generated: &Generated) -> Vec<Vec<u8>> {
    let encoder = Encoder::new(&SchemaIds::sequential()).expect("schemas parse");
    generated
        .messages
        .iter()
        .map(|m| encoder.encode(&m.payload).expect("encodes"))
        .collect()
}

#[test]
fn same_seed_same_bytes_other_seed_other_data() {
    let a = generated(7, 200);
    let b = generated(7, 200);
    assert_eq!(a, b);
    assert_eq!(encode_all(&a), encode_all(&b));
    assert_eq!(
        serde_json::to_string(&a.truth).expect("serialises"),
        serde_json::to_string(&b.truth).expect("serialises")
    );
    let c = generated(8, 200);
    assert_ne!(a.messages, c.messages);
    assert_ne!(a.truth.events, c.truth.events);
}

#[test]
fn every_avro_payload_encodes_with_its_writer_schema() {
    let generated = generated(1, 200);
    let encoder = Encoder::new(&SchemaIds::sequential()).expect("schemas parse");
    for message in &generated.messages {
        let bytes = encoder.encode(&message.payload).expect("encodes");
        if let Payload::Avro { schema, .. } = &message.payload {
            let id = SchemaIds::sequential().get(schema).expect("known version");
            assert_eq!(bytes[0], 0, "magic byte");
            assert_eq!(
                u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]),
                id
            );
            let channel = touchline_avro::upstream::by_name(schema)
                .expect("upstream version")
                .channel;
            assert_eq!(channel, message.channel, "{schema} on {}", message.topic());
        }
    }
}

#[test]
fn every_schema_version_and_surface_appears_at_200_customers() {
    let generated = generated(2, 200);
    let mut versions = BTreeMap::new();
    let mut line = 0;
    for message in &generated.messages {
        if let Payload::Avro { schema, document } = &message.payload {
            *versions.entry(*schema).or_insert(0) += 1;
            if document["surface"] == "LINE" {
                assert_eq!(*schema, "chatbot.v2", "LINE exists only in v2");
                line += 1;
            }
        }
    }
    for upstream in touchline_avro::upstream::ALL.iter() {
        assert!(
            versions.get(upstream.name).copied().unwrap_or(0) > 20,
            "{} is rare: {versions:?}",
            upstream.name
        );
    }
    assert!(line > 0);
}

#[test]
fn duplicates_and_bad_messages_at_the_configured_rates() {
    let generated = generated(3, 300);
    let counts = &generated.truth.counts;
    let events = generated.truth.events.len();
    assert_eq!(counts.events, events);
    assert_eq!(counts.duplicates, (0.05 * events as f64).round() as usize);
    assert_eq!(counts.bad, (0.01 * events as f64).round() as usize);
    assert_eq!(counts.messages, generated.messages.len());
    assert_eq!(
        counts.messages,
        counts.events + counts.duplicates + counts.bad
    );
    assert_eq!(generated.truth.dead_letters.len(), counts.bad);
    let by_topic_total: usize = counts.by_topic.values().map(|t| t.messages).sum();
    assert_eq!(by_topic_total, counts.messages);

    let reasons: BTreeSet<&str> = generated
        .truth
        .dead_letters
        .iter()
        .map(|d| d.reason.as_str())
        .collect();
    let expected: BTreeSet<&str> = BadKind::ALL.iter().map(|k| k.reason()).collect();
    assert_eq!(reasons, expected);
    let bad_messages = generated
        .messages
        .iter()
        .filter(|m| matches!(m.payload, Payload::Bad(_)))
        .count();
    assert_eq!(bad_messages, counts.bad);

    let none = generate(&Scenario {
        duplicate_rate: 0.0,
        bad_rate: 0.0,
        ..scenario(3, 50)
    })
    .expect("valid");
    assert_eq!(none.truth.counts.duplicates, 0);
    assert_eq!(none.truth.counts.bad, 0);
}

#[test]
fn truth_has_unique_events_and_every_delivery_maps_to_one() {
    let generated = generated(4, 200);
    let truth = &generated.truth;
    let ids: BTreeSet<&str> = truth.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), truth.events.len(), "event ids are unique");

    let encoded = encode_all(&generated);
    let mut first: BTreeMap<&str, (usize, &[u8])> = BTreeMap::new();
    let mut deliveries: BTreeMap<&str, u32> = BTreeMap::new();
    for (position, (message, bytes)) in generated.messages.iter().zip(&encoded).enumerate() {
        let Some(id) = message.event_id.as_deref() else {
            assert!(matches!(message.payload, Payload::Bad(_)));
            continue;
        };
        let event = truth.event(id).expect("every delivery has a truth event");
        assert_eq!(event.channel, message.channel);
        *deliveries.entry(id).or_default() += 1;
        match first.get(id) {
            None => {
                assert_eq!(message.delivery, 1, "the first delivery comes first");
                first.insert(id, (position, bytes));
            }
            Some((at, original)) => {
                assert_eq!(message.delivery, 2);
                assert!(position > *at, "a duplicate comes later");
                assert_eq!(bytes.as_slice(), *original, "a duplicate is the same bytes");
            }
        }
    }
    for event in &truth.events {
        assert_eq!(
            deliveries.get(event.event_id.as_str()),
            Some(&event.deliveries)
        );
    }
    assert_eq!(
        truth.events.iter().filter(|e| e.deliveries == 2).count(),
        truth.counts.duplicates
    );
}

#[test]
fn event_fields_follow_the_spec_forms() {
    let generated = generated(5, 200);
    let scenario = &generated.truth.scenario;
    let mut topics = BTreeSet::new();
    let mut channels = BTreeSet::new();
    let mut dropped = BTreeSet::new();
    for event in &generated.truth.events {
        assert!(
            (scenario.start_ms..=scenario.end_ms()).contains(&event.occurred_at_ms),
            "{} at {} is outside the window",
            event.event_id,
            event.occurred_at_ms
        );
        topics.insert(event.topic);
        channels.insert(event.channel);
        dropped.extend(event.dropped_scores.iter().copied());
        let contact = event.contact_id.as_deref();
        match event.channel {
            Channel::Chatbot => assert!(contact.is_some_and(|c| c.starts_with("chatbot:conv-"))),
            Channel::CallCenter => {
                let call = event.event_id.split(':').next().expect("call id");
                assert_eq!(contact, Some(format!("call_center:{call}").as_str()));
                assert!(event.event_id.ends_with(&format!(":{}", event.kind)));
            }
            Channel::Social => {
                let platform = event.event_id.split(':').next().expect("platform");
                assert!(contact.is_some_and(|c| c.starts_with(&format!("social:{platform}:"))));
                assert_eq!(platform, platform.to_lowercase());
            }
            Channel::App => {
                if event.kind == "support_request" {
                    assert_eq!(contact, Some(format!("app:{}", event.event_id).as_str()));
                } else {
                    assert_eq!(contact, None);
                }
                assert!(event.client_offset_ms.is_some());
            }
        }
        if let Some(csat) = event.csat {
            assert!((1..=5).contains(&csat));
        }
        if let Some(ces) = event.ces {
            assert!((1..=7).contains(&ces));
        }
        if let Some(nps) = event.nps {
            assert!(nps <= 10);
        }
        if let Some(s) = event.sentiment {
            assert!((-1.0..=1.0).contains(&s));
        }
    }
    assert_eq!(topics, Topic::ALL.into_iter().collect());
    assert_eq!(channels, Channel::ALL.into_iter().collect());
    for score in [ScoreName::Csat, ScoreName::Ces, ScoreName::Nps] {
        assert!(dropped.contains(&score), "no out-of-scale {score:?}");
    }
}

#[test]
fn hard_identity_cases_are_present() {
    for customers in [20, 200] {
        let generated = generated(6, customers);
        let truth = &generated.truth;
        let customer = |id: &str| {
            truth
                .customers
                .iter()
                .find(|c| c.id == id)
                .expect("listed customer")
        };

        let email = truth.hard_cases.email_variants.first().expect("email case");
        let cases: BTreeSet<&str> = email.raw.iter().map(|r| r.trim()).collect();
        assert!(cases.len() >= 3, "{email:?}");
        assert!(cases
            .iter()
            .all(|c| c.eq_ignore_ascii_case(cases.first().expect("one"))));
        assert_eq!(
            email.normal,
            format!("email:{}", email.raw[0].trim().to_lowercase())
        );

        let phone = truth.hard_cases.phone_formats.first().expect("phone case");
        assert!(phone.raw.len() >= 4, "{phone:?}");
        for raw in &phone.raw {
            let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
            let national = digits.trim_start_matches("82").trim_start_matches('0');
            assert_eq!(format!("phone:+82{national}"), phone.normal, "{raw}");
        }

        let household = truth.households.first().expect("a household");
        assert_eq!(truth.hard_cases.households.first(), Some(&household.id));
        assert_eq!(household.members.len(), 2);
        assert!(household.shared.iter().any(|s| s.starts_with("device:")));
        assert!(household.shared.iter().any(|s| s.starts_with("phone:+82")));
        let mut accounts = BTreeSet::new();
        for member in &household.members {
            let member = customer(member);
            assert_eq!(member.household.as_ref(), Some(&household.id));
            let own: Vec<_> = member
                .identifiers
                .iter()
                .filter(|i| i.kind == IdKind::Account)
                .collect();
            assert_eq!(own.len(), 1, "each member holds one account");
            accounts.insert(own[0].normal.clone());
            for shared in &household.shared {
                let used = member
                    .identifiers
                    .iter()
                    .find(|i| i.normal.as_ref() == Some(shared))
                    .unwrap_or_else(|| panic!("{} does not use {shared}", member.id));
                assert!(used.shared);
            }
        }
        assert_eq!(accounts.len(), 2, "two different account holders");

        // Identifiers of different non-household customers never collide.
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        for c in &truth.customers {
            for id in c.identifiers.iter().filter(|i| !i.shared) {
                if let Some(normal) = &id.normal {
                    let previous = owner.insert(normal, &c.id);
                    assert!(
                        previous.is_none(),
                        "{normal} used by {previous:?} and {}",
                        c.id
                    );
                }
            }
        }
        let dropped: BTreeSet<ScoreName> = truth
            .events
            .iter()
            .flat_map(|e| e.dropped_scores.iter().copied())
            .collect();
        for score in [ScoreName::Csat, ScoreName::Ces, ScoreName::Nps] {
            assert!(dropped.contains(&score), "no out-of-scale {score:?}");
        }
        let invalid: BTreeSet<IdKind> = truth
            .customers
            .iter()
            .flat_map(|c| c.identifiers.iter())
            .filter(|i| i.normal.is_none())
            .map(|i| i.kind)
            .collect();
        assert!(invalid.contains(&IdKind::Email) && invalid.contains(&IdKind::Phone));
        let kinds: BTreeSet<IdKind> = truth
            .customers
            .iter()
            .flat_map(|c| c.identifiers.iter().map(|i| i.kind))
            .collect();
        assert_eq!(kinds.len(), 6, "every identifier type: {kinds:?}");
    }
}

#[test]
fn app_clock_drift_over_and_under_ten_minutes() {
    let generated = generated(7, 20);
    let truth = &generated.truth;
    let app_times = |id: &str| {
        let message = generated
            .messages
            .iter()
            .find(|m| m.event_id.as_deref() == Some(id))
            .expect("delivered");
        let Payload::Avro { document, .. } = &message.payload else {
            panic!("valid");
        };
        let client = chrono::DateTime::parse_from_rfc3339(
            document["client_ts"].as_str().expect("client_ts"),
        )
        .expect("RFC 3339")
        .timestamp_millis();
        let server = document["server_ts"]
            .as_i64()
            .expect("server_ts")
            .div_euclid(1000);
        (client, server)
    };
    assert!(!truth.hard_cases.app_clock_over_10_min.is_empty());
    assert!(!truth.hard_cases.app_clock_under_10_min.is_empty());
    for id in &truth.hard_cases.app_clock_over_10_min {
        let (client, server) = app_times(id);
        assert!((client - server).abs() > 10 * 60_000);
        assert_eq!(truth.event(id).expect("event").occurred_at_ms, server);
    }
    for id in &truth.hard_cases.app_clock_under_10_min {
        let (client, server) = app_times(id);
        assert!((client - server).abs() <= 10 * 60_000);
        assert!((client - server).abs() > 2 * 60_000);
        assert_eq!(truth.event(id).expect("event").occurred_at_ms, client);
    }
}

#[test]
fn stream_is_mostly_but_not_always_in_order_per_key() {
    let generated = generated(8, 300);
    let mut last: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    let (mut pairs, mut inversions) = (0, 0);
    for message in &generated.messages {
        let Some(event) = message
            .event_id
            .as_deref()
            .and_then(|id| generated.truth.event(id))
        else {
            continue;
        };
        if message.delivery != 1 {
            continue;
        }
        let key = (message.topic(), message.key.as_str());
        if let Some(previous) = last.insert(key, event.occurred_at_ms) {
            pairs += 1;
            if event.occurred_at_ms < previous {
                inversions += 1;
            }
        }
    }
    let share = f64::from(inversions) / f64::from(pairs);
    assert!(inversions > 0, "some messages of a key arrive out of order");
    assert!(share < 0.15, "but most are in order: {inversions}/{pairs}");
}

#[test]
fn journeys_cross_channels_and_some_gaps_exceed_a_week() {
    let generated = generated(9, 200);
    // Contacts per simulated customer and topic: (channel, start).
    type Starts<'a> = BTreeMap<&'a str, (Channel, i64)>;
    let mut contacts: BTreeMap<(&str, Topic), Starts> = BTreeMap::new();
    for event in &generated.truth.events {
        let Some(contact) = event.contact_id.as_deref() else {
            continue;
        };
        if event.topic == Topic::Other {
            continue;
        }
        let start = contacts
            .entry((event.customer.as_str(), event.topic))
            .or_default()
            .entry(contact)
            .or_insert((event.channel, event.occurred_at_ms));
        start.1 = start.1.min(event.occurred_at_ms);
    }
    let (mut multichannel, mut gaps) = (0, 0);
    for runs in contacts.values() {
        let channels: BTreeSet<Channel> = runs.values().map(|(c, _)| *c).collect();
        if channels.len() > 1 {
            multichannel += 1;
        }
        let mut starts: Vec<i64> = runs.values().map(|(_, s)| *s).collect();
        starts.sort_unstable();
        if starts.windows(2).any(|w| w[1] - w[0] > 7 * 86_400_000) {
            gaps += 1;
        }
    }
    assert!(multichannel > 20, "{multichannel} multichannel runs");
    assert!(gaps > 0, "no gap over a week");
}

#[test]
fn prefix_truth_covers_exactly_what_was_produced() {
    let generated = generated(10, 100);
    let n = generated.messages.len() / 3;
    let prefix = generated.prefix(n);
    assert_eq!(prefix.messages.len(), n);
    let counts = &prefix.truth.counts;
    assert_eq!(counts.messages, n);
    assert_eq!(
        counts.messages,
        counts.events + counts.duplicates + counts.bad
    );
    let delivered: BTreeSet<&str> = prefix
        .messages
        .iter()
        .filter_map(|m| m.event_id.as_deref())
        .collect();
    let truth: BTreeSet<&str> = prefix
        .truth
        .events
        .iter()
        .map(|e| e.event_id.as_str())
        .collect();
    assert_eq!(delivered, truth);
    assert_eq!(generated.prefix(generated.messages.len()), generated);
}

#[test]
fn truth_file_round_trips() {
    let generated = generated(11, 30);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("truth.json");
    generated.truth.write_json(&path).expect("writes");
    let read = GroundTruth::read_json(&path).expect("reads");
    assert_eq!(read, generated.truth);
    let missing = GroundTruth::read_json(dir.path().join("missing.json"))
        .expect_err("no file")
        .to_string();
    assert!(missing.contains("missing.json"), "{missing}");
}

#[test]
fn small_and_invalid_scenarios() {
    for customers in [0, 1, 5] {
        let generated = generated(12, customers);
        assert_eq!(
            generated.truth.counts.messages,
            generated.messages.len(),
            "{customers} customers"
        );
    }
    let one_day = generate(&Scenario::new(1, 30, START_MS, 1)).expect("valid");
    for event in &one_day.truth.events {
        assert!(event.occurred_at_ms <= START_MS + 3 * 86_400_000);
    }
    let error = generate(&Scenario {
        bad_rate: 2.0,
        ..scenario(1, 10)
    })
    .expect_err("invalid");
    assert!(error.to_string().contains("--bad-rate"), "{error}");
}

#[test]
fn contacts_follow_section_4() {
    let generated = generated(13, 200);
    let truth = &generated.truth;
    let mut by_channel: BTreeMap<Channel, (usize, usize, usize)> = BTreeMap::new();
    for contact in &truth.contacts {
        let events: Vec<_> = truth
            .events
            .iter()
            .filter(|e| e.contact_id.as_deref() == Some(contact.contact_id.as_str()))
            .collect();
        assert_eq!(events.len(), contact.events);
        assert!(events.iter().all(|e| e.channel == contact.channel));
        let earliest = events.iter().map(|e| e.occurred_at_ms).min();
        assert_eq!(Some(contact.started_at_ms), earliest);
        if contact.handed_off {
            assert_eq!(contact.channel, Channel::Chatbot);
            assert!(events.iter().any(|e| e.kind == "HANDOFF_TO_AGENT"));
        }
        if let Some(ms) = contact.first_response_ms {
            assert!(ms >= 0, "{}", contact.contact_id);
            assert_ne!(contact.channel, Channel::App);
        }
        match contact.channel {
            Channel::Chatbot => {
                let ended = events.iter().find(|e| e.kind == "CONVERSATION_ENDED");
                assert_eq!(
                    contact.resolved,
                    ended.is_some_and(|e| e.resolves == Some(true))
                );
            }
            Channel::CallCenter => {
                assert!(events
                    .iter()
                    .any(|e| e.kind == "CALL_COMPLETED" || e.kind == "CALL_ABANDONED"));
                assert!(contact.first_response_ms.is_some());
            }
            Channel::Social => {
                assert!(events
                    .iter()
                    .any(|e| e.role == Some(touchline_loadgen::truth::Role::Customer)));
            }
            Channel::App => {
                assert_eq!(events.len(), 1);
                assert_eq!(events[0].kind, "support_request");
            }
        }
        let entry = by_channel.entry(contact.channel).or_default();
        entry.0 += 1;
        entry.1 += usize::from(contact.resolved);
        entry.2 += usize::from(contact.csat.is_some());
    }
    for channel in Channel::ALL {
        let (contacts, resolved, rated) = by_channel.get(&channel).copied().unwrap_or_default();
        assert!(contacts > 10, "{channel}: {contacts} contacts");
        assert!(
            resolved > 0 && resolved < contacts,
            "{channel}: {resolved}/{contacts} resolved"
        );
        if channel != Channel::App {
            assert!(rated > 0, "{channel}: no rated contact");
        }
    }
}

#[test]
fn identifier_normal_forms_follow_section_3() {
    let generated = generated(14, 300);
    for customer in &generated.truth.customers {
        for id in &customer.identifiers {
            for raw in &id.raw {
                let trimmed = raw.trim();
                match id.kind {
                    IdKind::Email => {
                        let (local, domain) = trimmed.split_once('@').unwrap_or(("", ""));
                        let valid = trimmed.matches('@').count() == 1
                            && !local.is_empty()
                            && domain.contains('.');
                        let expected = valid.then(|| format!("email:{}", trimmed.to_lowercase()));
                        assert_eq!(id.normal, expected, "{raw:?}");
                    }
                    IdKind::Account => {
                        assert_eq!(id.normal, Some(format!("account:{trimmed}")), "{raw:?}");
                    }
                    IdKind::Social => {
                        let handle = trimmed.trim_start_matches('@').to_lowercase();
                        let normal = id.normal.as_deref().expect("valid");
                        assert!(normal.starts_with("social:"), "{normal}");
                        assert!(normal.ends_with(&format!(":{handle}")), "{raw:?} {normal}");
                    }
                    IdKind::Device => assert_eq!(id.normal, Some(format!("device:{raw}"))),
                    IdKind::Visitor => assert_eq!(id.normal, Some(format!("visitor:{raw}"))),
                    IdKind::Phone => {
                        if id.normal.is_none() {
                            assert!(trimmed == "anonymous" || trimmed.len() == 11, "{raw:?}");
                        }
                    }
                }
            }
        }
    }
    let invalid: BTreeSet<IdKind> = generated
        .truth
        .customers
        .iter()
        .flat_map(|c| c.identifiers.iter())
        .filter(|i| i.normal.is_none())
        .map(|i| i.kind)
        .collect();
    assert_eq!(
        invalid,
        [IdKind::Email, IdKind::Phone].into_iter().collect()
    );
}

#[test]
fn event_times_stay_in_the_window_for_any_length() {
    for (seed, days) in [(31, 1), (32, 2), (33, 3), (34, 6), (35, 8), (36, 30)] {
        let scenario = Scenario::new(seed, 60, START_MS, days);
        let generated = generate(&scenario).expect("valid");
        for event in &generated.truth.events {
            assert!(
                (scenario.start_ms..=scenario.end_ms()).contains(&event.occurred_at_ms),
                "{days} days: {} at {}",
                event.event_id,
                event.occurred_at_ms
            );
        }
        for message in &generated.messages {
            let Payload::Avro { document, .. } = &message.payload else {
                continue;
            };
            // Every time field, not only the one the truth uses.
            let times = [
                document.get("occurred_at").and_then(|v| v.as_i64()),
                document.get("started_at").and_then(|v| v.as_i64()),
                document
                    .get("created_at_epoch_s")
                    .and_then(|v| v.as_i64())
                    .map(|s| s * 1000),
                document
                    .get("server_ts")
                    .and_then(|v| v.as_i64())
                    .map(|us| us / 1000),
            ];
            for time in times.into_iter().flatten() {
                assert!(
                    (scenario.start_ms..=scenario.end_ms()).contains(&time),
                    "{days} days: {document}"
                );
            }
        }
    }
}
