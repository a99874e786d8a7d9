//! The ground truth: what the pipeline must find in what was produced.
//!
//! It is computed from the generator's own knowledge of what it simulated
//! (which topic it meant, which clock it skewed, which phone number it wrote
//! in which format), never by running Touchline's normalisation, so that it can
//! test that normalisation. Everything here is derived from the per-event
//! facts and the list of messages, which is what lets [`GroundTruth::restrict`]
//! give the exact truth of any prefix of the stream.
//!
//! # The truth file
//!
//! [`GroundTruth::write_json`] writes one JSON object (compact; shown here
//! indented and cut short):
//!
//! ```json
//! {
//!   "format": 1,
//!   "scenario": {"seed": 42, "customers": 1000, "start_ms": 1767225600000, "days": 14,
//!                "duplicate_rate": 0.02, "bad_rate": 0.005},
//!   "counts": {"messages": 18482, "events": 18031, "duplicates": 361, "bad": 90,
//!              "by_topic": {"cx.app.events": {"messages": 6583, "events": 6430,
//!                                             "duplicates": 126, "bad": 27}}},
//!   "events": [{
//!     "event_id": "00015e5a-f510-405f-a4ad-d79157362bbe", "channel": "app",
//!     "occurred_at_ms": 1767479254376, "topic": "account",
//!     "contact_id": "app:00015e5a-f510-405f-a4ad-d79157362bbe", "kind": "support_request",
//!     "schema": "app.v1", "csat": null, "ces": null, "nps": null, "sentiment": null,
//!     "dropped_scores": [], "client_offset_ms": -161271507, "customer": "sim-000488",
//!     "identifiers": [{"kind": "device", "raw": "44284525-4EDF-4D17-98B5-59A71B902199",
//!                      "normal": "device:44284525-4EDF-4D17-98B5-59A71B902199"}],
//!     "role": null, "resolves": false, "wait_seconds": null, "deliveries": 1
//!   }],
//!   "dead_letters": [{"number": 0, "topic": "cx.social.events", "channel": "social",
//!                     "key": "t_1938459815013", "reason": "truncated_avro", "schema": "social.v1"}],
//!   "contacts": [{"contact_id": "chatbot:conv-6343ce7c90a7", "channel": "chatbot",
//!                 "customer": "sim-000027", "topic": "account", "started_at_ms": 1767336469409,
//!                 "resolved": true, "handed_off": true, "first_response_ms": 2568,
//!                 "csat": 4, "ces": null, "nps": null, "events": 9}],
//!   "customers": [{"id": "sim-000005", "household": null, "identifiers": [
//!     {"kind": "phone", "normal": "phone:+821067729675", "shared": false,
//!      "raw": ["+82 10 6772 9675", "+82-10-6772-9675", "010-6772-9675", "01067729675",
//!              "821067729675"]},
//!     {"kind": "phone", "normal": null, "shared": false, "raw": ["anonymous"]}]}],
//!   "households": [{"id": "household-1", "members": ["sim-000708", "sim-000465"],
//!                   "shared": ["device:46819C07-18F8-4B9E-A6A0-2E9AA1B80318",
//!                              "phone:+821088490535"]}],
//!   "hard_cases": {"email_variants": [{"customer": "…", "normal": "email:…", "raw": ["…"]}],
//!                  "phone_formats": [], "households": ["household-1"],
//!                  "app_clock_over_10_min": ["<event_id>"],
//!                  "app_clock_under_10_min": ["<event_id>"]}
//! }
//! ```
//!
//! `channel` and `topic` use the timeline's names; scores are the in-scale
//! values; times are milliseconds since the Unix epoch, UTC.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use touchline_model::{Channel, Topic};

use crate::error::LoadgenError;
use crate::message::{Payload, SourceMessage};
use crate::scenario::{Scenario, MINUTE_MS};

/// Version of the truth file's layout; bumped when a field changes meaning.
pub const TRUTH_FORMAT: u32 = 1;

/// How far an app's device clock may be from the collector's and still be
/// used (`SPEC.md` §2), in milliseconds.
pub const MAX_CLIENT_DRIFT_MS: i64 = 10 * MINUTE_MS;

/// Everything the pipeline must compute from the produced messages, as far as
/// the generator knows it. Written as one JSON document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// [`TRUTH_FORMAT`] of the writer.
    pub format: u32,
    /// The scenario that generated it.
    pub scenario: Scenario,
    /// Messages, distinct events, duplicates and malformed messages.
    pub counts: Counts,
    /// One per distinct source event that was delivered at least once,
    /// sorted by `event_id`: the expected `v_timeline` rows (`SPEC.md` §2).
    pub events: Vec<TruthEvent>,
    /// One per malformed message, sorted by `number`: the expected dead
    /// letters.
    pub dead_letters: Vec<DeadLetter>,
    /// One per contact of the delivered events, sorted by `contact_id`: the
    /// expected `v_contacts` rows but for `customer_id` (`SPEC.md` §4).
    pub contacts: Vec<TruthContact>,
    /// Every simulated customer with at least one delivered event, sorted by
    /// id, with the identifiers they used (`SPEC.md` §3).
    pub customers: Vec<TruthCustomer>,
    /// Account holders who share a device and a phone number. Which customer
    /// those shared identifiers end up with is for the identity rules to
    /// decide (`SPEC.md` §3, nearest account); the truth only marks them.
    pub households: Vec<Household>,
    /// Where the hard cases of `SPEC.md` §2-3 are, to assert on them directly.
    pub hard_cases: HardCases,
}

/// Sizes of the produced stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Messages produced: events + duplicates + bad.
    pub messages: usize,
    /// Distinct source events (timeline rows).
    pub events: usize,
    /// Second deliveries of an event already delivered.
    pub duplicates: usize,
    /// Malformed messages (dead letters).
    pub bad: usize,
    /// The same counts per source topic.
    pub by_topic: BTreeMap<String, TopicCounts>,
}

/// Sizes of the produced stream on one topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicCounts {
    pub messages: usize,
    pub events: usize,
    pub duplicates: usize,
    pub bad: usize,
}

/// One distinct source event and what the pipeline must make of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthEvent {
    /// `SPEC.md` §2: chatbot and app `event_id`, social `<platform>:<id>`,
    /// call center `<call_id>:<record_type>`.
    pub event_id: String,
    #[serde(with = "channel_name")]
    pub channel: Channel,
    /// Milliseconds since the Unix epoch, UTC.
    pub occurred_at_ms: i64,
    #[serde(with = "topic_name")]
    pub topic: Topic,
    /// `chatbot:<conversation_id>`, `call_center:<call_id>`,
    /// `social:<platform>:<thread_id>`, `app:<event_id>` (support requests
    /// only); `None` for other app events.
    pub contact_id: Option<String>,
    /// The source's own name: chatbot `event_type`, app `event_name`, social
    /// `kind`, call-center `record_type`.
    pub kind: String,
    /// Writer schema version it was published with, e.g. `callcenter.v1`.
    pub schema: String,
    /// In-scale scores; out-of-scale ones are absent and listed in
    /// `dropped_scores`.
    pub csat: Option<u8>,
    pub ces: Option<u8>,
    pub nps: Option<u8>,
    pub sentiment: Option<f32>,
    /// Scores the source sent outside their scale: the event is kept, the
    /// score dropped.
    pub dropped_scores: Vec<ScoreName>,
    /// App events: device clock minus collector clock, in milliseconds (the
    /// event's time is the device's when this is within ±10 minutes).
    pub client_offset_ms: Option<i64>,
    /// The simulated customer whose exchange this is (for the brand's social
    /// replies: the customer replied to).
    pub customer: String,
    /// The identifiers the event carries, as written and in normal form
    /// (`None` when the pipeline must drop it as invalid). Empty for the
    /// brand's own social messages.
    pub identifiers: Vec<IdentifierUse>,
    /// Who wrote a message, for first-response times (`SPEC.md` §4): the
    /// customer (chatbot `USER_MESSAGE`, a social message not by the brand)
    /// or a responder (chatbot `BOT_MESSAGE`/`AGENT_MESSAGE`, the brand's
    /// social messages); `None` for other events.
    pub role: Option<Role>,
    /// The event's say on whether its contact is resolved: chatbot
    /// `CONVERSATION_ENDED` `resolved`; call `CALL_COMPLETED`/`CALL_ABANDONED`
    /// `disposition = RESOLVED`; the brand's social `resolved`; app
    /// `support_request` `properties.resolved = "true"`.
    pub resolves: Option<bool>,
    /// `wait_seconds` of a `CALL_COMPLETED` or `CALL_ABANDONED` record.
    pub wait_seconds: Option<u32>,
    /// Talk + hold + wrap seconds of a `CALL_COMPLETED` or `CALL_ABANDONED`
    /// record.
    #[serde(default)]
    pub handle_seconds: Option<u32>,
    /// How many times it was produced: 1, or 2 with a duplicate.
    pub deliveries: u32,
}

/// Who wrote a message (see [`TruthEvent::role`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Responder,
}

/// The facts of an event that its contact's truth is derived from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ContactFacts {
    pub(crate) role: Option<Role>,
    pub(crate) resolves: Option<bool>,
    pub(crate) wait_seconds: Option<u32>,
    pub(crate) handle_seconds: Option<u32>,
}

/// One contact (`SPEC.md` §4), derived from its delivered events. Which
/// customer it belongs to is for the identity rules; `customer` is the
/// simulated one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthContact {
    pub contact_id: String,
    #[serde(with = "channel_name")]
    pub channel: Channel,
    /// The simulated customer.
    pub customer: String,
    /// The first non-`other` topic among its events in order of time, then
    /// event id; else `other`.
    #[serde(with = "topic_name")]
    pub topic: Topic,
    /// Its earliest event.
    pub started_at_ms: i64,
    pub resolved: bool,
    /// A chatbot conversation with `HANDOFF_TO_AGENT`.
    pub handed_off: bool,
    /// Chatbot: first bot/agent message minus first user message; social:
    /// first brand message minus first customer message; call: `wait_seconds`
    /// (times 1000); app: none. `None` when there was no response.
    pub first_response_ms: Option<i64>,
    /// Scores of its events (a conversation's `SURVEY_RESPONSE`, a call's
    /// `SURVEY` record, a review's rating).
    pub csat: Option<u8>,
    pub ces: Option<u8>,
    pub nps: Option<u8>,
    /// Calls: talk + hold + wrap of its call record.
    #[serde(default)]
    pub handle_seconds: Option<u32>,
    /// Calls: its call record is `CALL_ABANDONED`.
    #[serde(default)]
    pub abandoned: bool,
    /// Its distinct delivered events.
    pub events: usize,
}

/// A score of `SPEC.md` §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreName {
    Csat,
    Ces,
    Nps,
    Sentiment,
}

/// The type of an identifier (`SPEC.md` §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdKind {
    Account,
    Email,
    Phone,
    Social,
    Device,
    Visitor,
}

/// One identifier as an event carries it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IdentifierUse {
    pub kind: IdKind,
    /// Exactly as written in the message.
    pub raw: String,
    /// `account:…`, `email:…`, `phone:+82…`, `social:<platform>:<handle>`,
    /// `device:…`, `visitor:…`; `None` for an invalid value the pipeline must
    /// drop (`anonymous`, a malformed email or phone number).
    pub normal: Option<String>,
}

/// A malformed message and the dead-letter reason the pipeline must give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Its number among the malformed messages of the full generation.
    pub number: u32,
    /// The topic it is produced to.
    pub topic: String,
    /// The channel of that topic.
    #[serde(with = "channel_name")]
    pub channel: Channel,
    pub key: String,
    /// `truncated_avro`, `bad_magic`, `unknown_schema`,
    /// `wrong_schema_for_topic` or `invalid_enum`.
    pub reason: String,
    /// The schema version its (spoiled) record was written with.
    pub schema: String,
}

/// A simulated customer and the identifiers seen for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthCustomer {
    /// The simulation's own id, e.g. `sim-000042` (not a pipeline customer_id).
    pub id: String,
    /// The household it belongs to, if any.
    pub household: Option<String>,
    /// Sorted by kind, then normal form.
    pub identifiers: Vec<CustomerIdentifier>,
}

/// One identifier of a simulated customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerIdentifier {
    pub kind: IdKind,
    /// Normal form; `None` groups the customer's invalid values of this kind.
    pub normal: Option<String>,
    /// Every way the delivered events wrote it, sorted.
    pub raw: Vec<String>,
    /// A household's shared device or phone, used by more than one account
    /// holder.
    pub shared: bool,
}

/// Account holders sharing a device and a phone number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Household {
    pub id: String,
    /// Simulated customer ids, each holding its own account.
    pub members: Vec<String>,
    /// Normal forms of the shared identifiers.
    pub shared: Vec<String>,
}

/// The hard cases, found in the delivered events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardCases {
    /// Emails written in three or more letter cases (ignoring surrounding
    /// white space).
    pub email_variants: Vec<IdentifierCase>,
    /// Phone numbers written in four or more formats.
    pub phone_formats: Vec<IdentifierCase>,
    /// Household ids (see [`GroundTruth::households`]).
    pub households: Vec<String>,
    /// App events whose device clock is more than 10 minutes off: their time
    /// is `server_ts`.
    pub app_clock_over_10_min: Vec<String>,
    /// App events whose device clock is 2 to 10 minutes off: their time is
    /// still `client_ts`.
    pub app_clock_under_10_min: Vec<String>,
}

/// One identifier written in several ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentifierCase {
    pub customer: String,
    pub normal: String,
    pub raw: Vec<String>,
}

impl GroundTruth {
    /// Builds the truth of `messages` from the facts of every simulated event
    /// (`events`, any that no message delivers are left out) and of every
    /// malformed message (`dead_letters`, likewise).
    pub(crate) fn build(
        scenario: &Scenario,
        events: Vec<TruthEvent>,
        dead_letters: Vec<DeadLetter>,
        households: Vec<Household>,
        messages: &[SourceMessage],
    ) -> GroundTruth {
        let mut deliveries: BTreeMap<&str, u32> = BTreeMap::new();
        let mut bad_numbers = BTreeSet::new();
        let mut counts = Counts::default();
        for message in messages {
            let topic = counts
                .by_topic
                .entry(message.topic().to_owned())
                .or_default();
            topic.messages += 1;
            counts.messages += 1;
            match (&message.payload, &message.event_id) {
                (Payload::Bad(bad), _) => {
                    bad_numbers.insert(bad.number);
                    topic.bad += 1;
                    counts.bad += 1;
                }
                (Payload::Avro { .. }, Some(id)) => {
                    let seen = deliveries.entry(id.as_str()).or_default();
                    *seen += 1;
                    if *seen == 1 {
                        topic.events += 1;
                        counts.events += 1;
                    } else {
                        topic.duplicates += 1;
                        counts.duplicates += 1;
                    }
                }
                (Payload::Avro { .. }, None) => {}
            }
        }
        let mut kept = events;
        kept.retain_mut(|event| match deliveries.get(event.event_id.as_str()) {
            Some(n) => {
                event.deliveries = *n;
                true
            }
            None => false,
        });
        kept.sort_by(|a, b| a.event_id.cmp(&b.event_id));
        kept.dedup_by(|a, b| a.event_id == b.event_id);
        let mut dead = dead_letters;
        dead.retain(|d| bad_numbers.contains(&d.number));
        dead.sort_by_key(|d| d.number);
        let contacts = contacts(&kept);
        let customers = customers(&kept, &households);
        let hard_cases = hard_cases(&kept, &customers, &households);
        GroundTruth {
            format: TRUTH_FORMAT,
            scenario: scenario.clone(),
            counts,
            events: kept,
            dead_letters: dead,
            contacts,
            customers,
            households,
            hard_cases,
        }
    }

    /// The truth of a prefix (or any subset) of the messages this truth was
    /// built for: events no message delivers any more are dropped, counts
    /// and customers recomputed. Used when production stopped early.
    pub fn restrict(&self, messages: &[SourceMessage]) -> GroundTruth {
        GroundTruth::build(
            &self.scenario,
            self.events.clone(),
            self.dead_letters.clone(),
            self.households.clone(),
            messages,
        )
    }

    /// The event with this id, if it was delivered.
    pub fn event(&self, event_id: &str) -> Option<&TruthEvent> {
        self.events
            .binary_search_by(|e| e.event_id.as_str().cmp(event_id))
            .ok()
            .and_then(|i| self.events.get(i))
    }

    /// Expected dead letters per (topic, reason).
    pub fn dead_letter_counts(&self) -> BTreeMap<(String, String), usize> {
        let mut counts = BTreeMap::new();
        for dead in &self.dead_letters {
            *counts
                .entry((dead.topic.clone(), dead.reason.clone()))
                .or_default() += 1;
        }
        counts
    }

    /// Writes the truth as one JSON document (compact, newline-terminated).
    pub fn write_json(&self, path: impl AsRef<Path>) -> Result<(), LoadgenError> {
        let path = path.as_ref();
        let error = |reason: String| LoadgenError::TruthFile {
            action: "write",
            path: path.to_owned(),
            reason,
        };
        let file = File::create(path).map_err(|e| error(e.to_string()))?;
        let mut writer = BufWriter::new(file);
        serde_json::to_writer(&mut writer, self).map_err(|e| error(e.to_string()))?;
        writer
            .write_all(b"\n")
            .and_then(|()| writer.flush())
            .map_err(|e| error(e.to_string()))
    }

    /// Reads a truth file written by [`GroundTruth::write_json`].
    pub fn read_json(path: impl AsRef<Path>) -> Result<GroundTruth, LoadgenError> {
        let path = path.as_ref();
        let error = |reason: String| LoadgenError::TruthFile {
            action: "read",
            path: path.to_owned(),
            reason,
        };
        let file = File::open(path).map_err(|e| error(e.to_string()))?;
        let truth: GroundTruth = serde_json::from_reader(BufReader::new(file))
            .map_err(|e| error(format!("not a truth file: {e}")))?;
        if truth.format != TRUTH_FORMAT {
            return Err(error(format!(
                "format {} is not the supported format {TRUTH_FORMAT}; regenerate it",
                truth.format
            )));
        }
        Ok(truth)
    }
}

/// The contacts of the delivered events (`SPEC.md` §4).
fn contacts(events: &[TruthEvent]) -> Vec<TruthContact> {
    let mut by_contact: BTreeMap<&str, Vec<&TruthEvent>> = BTreeMap::new();
    for event in events {
        if let Some(contact) = &event.contact_id {
            by_contact.entry(contact.as_str()).or_default().push(event);
        }
    }
    let first_of = |events: &[&TruthEvent], role: Role| {
        events
            .iter()
            .filter(|e| e.role == Some(role))
            .map(|e| e.occurred_at_ms)
            .min()
    };
    let mut contacts = Vec::with_capacity(by_contact.len());
    for (contact_id, mut events) in by_contact {
        events
            .sort_by(|a, b| (a.occurred_at_ms, &a.event_id).cmp(&(b.occurred_at_ms, &b.event_id)));
        let Some(first) = events.first() else {
            continue;
        };
        let channel = first.channel;
        let exists = match channel {
            Channel::CallCenter => events.iter().any(|e| e.wait_seconds.is_some()),
            Channel::Social => events.iter().any(|e| e.role == Some(Role::Customer)),
            Channel::Chatbot | Channel::App => true,
        };
        if !exists {
            continue;
        }
        let resolved = match channel {
            Channel::Social => events.iter().any(|e| e.resolves == Some(true)),
            _ => events
                .iter()
                .rev()
                .find_map(|e| e.resolves)
                .unwrap_or(false),
        };
        let call_record = events.iter().rev().find(|e| e.wait_seconds.is_some());
        let first_response_ms = match channel {
            Channel::Chatbot | Channel::Social => {
                match (
                    first_of(&events, Role::Customer),
                    first_of(&events, Role::Responder),
                ) {
                    (Some(asked), Some(answered)) => Some(answered - asked),
                    _ => None,
                }
            }
            Channel::CallCenter => events
                .iter()
                .find_map(|e| e.wait_seconds)
                .map(|s| i64::from(s) * 1000),
            Channel::App => None,
        };
        contacts.push(TruthContact {
            contact_id: contact_id.to_owned(),
            channel,
            customer: first.customer.clone(),
            topic: events
                .iter()
                .map(|e| e.topic)
                .find(|t| *t != Topic::Other)
                .unwrap_or(Topic::Other),
            started_at_ms: first.occurred_at_ms,
            resolved,
            handed_off: events.iter().any(|e| e.kind == "HANDOFF_TO_AGENT"),
            first_response_ms,
            csat: events.iter().find_map(|e| e.csat),
            ces: events.iter().find_map(|e| e.ces),
            nps: events.iter().find_map(|e| e.nps),
            handle_seconds: call_record.and_then(|e| e.handle_seconds),
            abandoned: call_record.is_some_and(|e| e.kind == "CALL_ABANDONED"),
            events: events.len(),
        });
    }
    contacts
}

/// The customers of the delivered events, with their identifiers.
fn customers(events: &[TruthEvent], households: &[Household]) -> Vec<TruthCustomer> {
    let shared: BTreeSet<&str> = households
        .iter()
        .flat_map(|h| h.shared.iter().map(String::as_str))
        .collect();
    let household_of: BTreeMap<&str, &str> = households
        .iter()
        .flat_map(|h| h.members.iter().map(|m| (m.as_str(), h.id.as_str())))
        .collect();
    type Raw<'a> = BTreeMap<(IdKind, Option<&'a str>), BTreeSet<&'a str>>;
    let mut by_customer: BTreeMap<&str, Raw> = BTreeMap::new();
    for event in events {
        let ids = by_customer.entry(event.customer.as_str()).or_default();
        for used in &event.identifiers {
            ids.entry((used.kind, used.normal.as_deref()))
                .or_default()
                .insert(used.raw.as_str());
        }
    }
    by_customer
        .into_iter()
        .map(|(id, ids)| TruthCustomer {
            id: id.to_owned(),
            household: household_of.get(id).map(|h| (*h).to_owned()),
            identifiers: ids
                .into_iter()
                .map(|((kind, normal), raw)| CustomerIdentifier {
                    kind,
                    shared: normal.is_some_and(|n| shared.contains(n)),
                    normal: normal.map(str::to_owned),
                    raw: raw.into_iter().map(str::to_owned).collect(),
                })
                .collect(),
        })
        .collect()
}

fn hard_cases(
    events: &[TruthEvent],
    customers: &[TruthCustomer],
    households: &[Household],
) -> HardCases {
    let mut cases = HardCases::default();
    for customer in customers {
        for id in &customer.identifiers {
            let Some(normal) = &id.normal else { continue };
            let case = || IdentifierCase {
                customer: customer.id.clone(),
                normal: normal.clone(),
                raw: id.raw.clone(),
            };
            match id.kind {
                IdKind::Email if distinct_trimmed(&id.raw) >= 3 => {
                    cases.email_variants.push(case());
                }
                IdKind::Phone if id.raw.len() >= 4 => cases.phone_formats.push(case()),
                _ => {}
            }
        }
    }
    let present: BTreeSet<&str> = customers.iter().map(|c| c.id.as_str()).collect();
    cases.households = households
        .iter()
        .filter(|h| h.members.iter().all(|m| present.contains(m.as_str())))
        .map(|h| h.id.clone())
        .collect();
    for event in events {
        let Some(offset) = event.client_offset_ms else {
            continue;
        };
        if offset.abs() > MAX_CLIENT_DRIFT_MS {
            cases.app_clock_over_10_min.push(event.event_id.clone());
        } else if offset.abs() > 2 * MINUTE_MS {
            cases.app_clock_under_10_min.push(event.event_id.clone());
        }
    }
    cases
}

fn distinct_trimmed(raw: &[String]) -> usize {
    raw.iter().map(|r| r.trim()).collect::<BTreeSet<_>>().len()
}

/// `Channel` as its timeline name (`chatbot`, `app`, `social`, `call_center`).
pub(crate) mod channel_name {
    use serde::{de, Deserialize, Deserializer, Serializer};
    use touchline_model::Channel;

    pub fn serialize<S: Serializer>(channel: &Channel, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(channel.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Channel, D::Error> {
        let name = String::deserialize(d)?;
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
            .ok_or_else(|| de::Error::custom(format!("unknown channel `{name}`")))
    }
}

/// `Topic` as its timeline name (`billing`, ..., `other`).
pub(crate) mod topic_name {
    use serde::{de, Deserialize, Deserializer, Serializer};
    use touchline_model::Topic;

    pub fn serialize<S: Serializer>(topic: &Topic, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(topic.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Topic, D::Error> {
        let name = String::deserialize(d)?;
        Topic::ALL
            .into_iter()
            .find(|t| t.as_str() == name)
            .ok_or_else(|| de::Error::custom(format!("unknown topic `{name}`")))
    }
}
