//! Contacts (`SPEC.md` §4): one customer-initiated exchange on one channel,
//! derived from the events that carry its contact id.
//!
//! Each event contributes a [`ContactFact`]; a contact is a pure function of
//! the set of its facts ([`contact`]), so it comes out the same whatever order
//! or how many times the events arrived, and can be recomputed whenever a late
//! event joins. Choices where the spec is silent:
//! - several scored events: the earliest (by time, then event id) counts;
//! - several closing events (`CONVERSATION_ENDED`, call records): the latest
//!   with a resolution decides;
//! - first response is literally "first responder message minus first
//!   customer message", so a bot that speaks first gives a negative figure,
//!   which is kept rather than hidden.

use sha2::{Digest, Sha256};

use crate::event::{Channel, Scores, Topic, UnifiedEvent};
use crate::identity::{IdKind, Identifier};
use crate::source::SourceRecord;

/// An event's identity key (its first identifier in anchor order) as it is
/// stored: its kind, for the anchor order, and its stored form (the typed
/// normal form, or a keyed hash of it when identifiers are pseudonymised).
/// Ordered as the anchor order is: kind first, then the stored form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContactKey {
    pub kind: IdKind,
    pub stored: String,
}

impl ContactKey {
    /// The key of `id` stored as its typed normal form.
    pub fn plain(id: &Identifier) -> ContactKey {
        ContactKey {
            kind: id.kind(),
            stored: id.as_string(),
        }
    }
}

/// Who wrote an event of a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The customer: a chatbot `USER_MESSAGE`, a social message not written
    /// by the brand, an app support request.
    Customer,
    /// The brand: a chatbot `BOT_MESSAGE` or `AGENT_MESSAGE`, the brand's
    /// social replies.
    Responder,
    /// Anything else: conversation starts and ends, surveys, call records.
    Other,
}

/// What one event says about its contact.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactFact {
    pub contact_id: String,
    pub channel: Channel,
    pub event_id: String,
    pub occurred_at_ms: i64,
    pub topic: Topic,
    pub role: Role,
    /// Whether this event makes the contact exist: any chatbot event, a call
    /// record `CALL_COMPLETED` or `CALL_ABANDONED`, a customer-written social
    /// message, an app `support_request`.
    pub opens: bool,
    /// The resolution this event states, if any.
    pub resolves: Option<bool>,
    /// A chatbot `HANDOFF_TO_AGENT`.
    pub hands_off: bool,
    /// Call records that open the contact: the caller's wait, and talk + hold
    /// + wrap.
    pub wait_seconds: Option<u32>,
    pub handle_seconds: Option<u32>,
    pub abandoned: bool,
    pub scores: Scores,
    /// The event's identity key, if it has an identifier.
    pub identity_key: Option<ContactKey>,
}

/// The fact an event contributes to its contact; `None` when the event
/// belongs to no contact.
pub fn contact_fact(
    record: &SourceRecord,
    event: &UnifiedEvent,
    identity_key: Option<ContactKey>,
) -> Option<ContactFact> {
    let contact_id = event.contact_id.clone()?;
    let mut fact = ContactFact {
        contact_id,
        channel: event.channel,
        event_id: event.event_id.clone(),
        occurred_at_ms: event.occurred_at_ms,
        topic: event.topic,
        role: Role::Other,
        opens: false,
        resolves: None,
        hands_off: false,
        wait_seconds: None,
        handle_seconds: None,
        abandoned: false,
        scores: event.scores,
        identity_key,
    };
    match record {
        SourceRecord::Chatbot(e) => {
            fact.opens = true;
            fact.role = match e.event_type.as_str() {
                "USER_MESSAGE" => Role::Customer,
                "BOT_MESSAGE" | "AGENT_MESSAGE" => Role::Responder,
                _ => Role::Other,
            };
            fact.hands_off = e.event_type == "HANDOFF_TO_AGENT";
            if e.event_type == "CONVERSATION_ENDED" {
                fact.resolves = Some(e.resolved.unwrap_or(false));
            }
        }
        SourceRecord::CallCenter(e) => {
            let closes = matches!(e.record_type.as_str(), "CALL_COMPLETED" | "CALL_ABANDONED");
            if closes {
                fact.opens = true;
                fact.abandoned = e.record_type == "CALL_ABANDONED";
                fact.resolves = Some(e.disposition.as_deref() == Some("RESOLVED"));
                fact.wait_seconds = u32::try_from(e.wait_seconds).ok();
                fact.handle_seconds = [e.talk_seconds, e.hold_seconds, e.wrap_seconds]
                    .into_iter()
                    .map(|s| u32::try_from(s).ok())
                    .sum();
            }
        }
        SourceRecord::Social(e) => {
            if e.author_is_brand {
                fact.role = Role::Responder;
                fact.resolves = (e.resolved == Some(true)).then_some(true);
            } else {
                fact.role = Role::Customer;
                fact.opens = true;
            }
        }
        SourceRecord::App(e) => {
            fact.role = Role::Customer;
            fact.opens = true;
            fact.resolves = Some(e.properties.get("resolved").map(String::as_str) == Some("true"));
        }
    }
    Some(fact)
}

/// A contact, as `v_contacts` shows it (its customer is looked up through
/// `identity_key`, so that it follows identity merges and splits).
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub contact_id: String,
    pub channel: Channel,
    pub topic: Topic,
    pub started_at_ms: i64,
    pub resolved: bool,
    pub handed_off: bool,
    pub first_response_ms: Option<i64>,
    pub csat: Option<u8>,
    pub ces: Option<u8>,
    pub nps: Option<u8>,
    /// Calls: talk + hold + wrap.
    pub handle_seconds: Option<u32>,
    /// Calls: `CALL_ABANDONED`.
    pub abandoned: bool,
    /// Its first identifier in anchor order over all its events, if any.
    pub identity_key: Option<ContactKey>,
    /// Its distinct events.
    pub events: usize,
}

/// The contact of `facts` (all of one contact id, any order, duplicates
/// allowed); `None` while no event makes it a contact.
pub fn contact(facts: &[ContactFact]) -> Option<Contact> {
    let mut facts: Vec<&ContactFact> = facts.iter().collect();
    facts.sort_by(|a, b| (a.occurred_at_ms, &a.event_id).cmp(&(b.occurred_at_ms, &b.event_id)));
    facts.dedup_by(|a, b| a.event_id == b.event_id);
    if !facts.iter().any(|f| f.opens) {
        return None;
    }
    let first = facts.first()?;
    let first_of = |role: Role| {
        facts
            .iter()
            .find(|f| f.role == role)
            .map(|f| f.occurred_at_ms)
    };
    let opening = facts
        .iter()
        .rev()
        .find(|f| f.opens && f.wait_seconds.is_some());
    let first_response_ms = match first.channel {
        Channel::Chatbot | Channel::Social => first_of(Role::Responder)
            .zip(first_of(Role::Customer))
            .map(|(answered, asked)| answered - asked),
        Channel::CallCenter => opening
            .and_then(|f| f.wait_seconds)
            .map(|s| i64::from(s) * 1000),
        Channel::App => None,
    };
    let resolved = match first.channel {
        Channel::Social => facts.iter().any(|f| f.resolves == Some(true)),
        _ => facts.iter().rev().find_map(|f| f.resolves).unwrap_or(false),
    };
    Some(Contact {
        contact_id: first.contact_id.clone(),
        channel: first.channel,
        topic: facts
            .iter()
            .map(|f| f.topic)
            .find(|t| *t != Topic::Other)
            .unwrap_or(Topic::Other),
        started_at_ms: first.occurred_at_ms,
        resolved,
        handed_off: facts.iter().any(|f| f.hands_off),
        first_response_ms,
        csat: facts.iter().find_map(|f| f.scores.csat),
        ces: facts.iter().find_map(|f| f.scores.ces),
        nps: facts.iter().find_map(|f| f.scores.nps),
        handle_seconds: opening.and_then(|f| f.handle_seconds),
        abandoned: opening.is_some_and(|f| f.abandoned),
        identity_key: facts
            .iter()
            .filter_map(|f| f.identity_key.as_ref())
            .min()
            .cloned(),
        events: facts.len(),
    })
}

/// Contacts of one customer and topic belong to one journey while each
/// starts within this long of the previous one.
pub const JOURNEY_GAP_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// A customer's run of contacts on one topic (`SPEC.md` §5).
#[derive(Debug, Clone, PartialEq)]
pub struct Journey {
    /// `j_` and 16 hex digits of SHA-256 of its first contact's id: the same
    /// journey keeps its id as contacts join it at the end.
    pub journey_id: String,
    pub topic: Topic,
    pub started_at_ms: i64,
    pub contact_ids: Vec<String>,
    pub channel_count: usize,
    /// Consecutive contacts on different channels.
    pub channel_switches: usize,
    /// Its last contact is resolved.
    pub resolved: bool,
    /// Exactly one contact, and it is resolved.
    pub one_contact_resolution: bool,
}

/// The journeys of one customer's contacts (any order).
pub fn journeys(contacts: &[Contact]) -> Vec<Journey> {
    let mut sorted: Vec<&Contact> = contacts.iter().collect();
    sorted.sort_by(|a, b| {
        (a.topic, a.started_at_ms, &a.contact_id).cmp(&(b.topic, b.started_at_ms, &b.contact_id))
    });
    let mut runs: Vec<Vec<&Contact>> = Vec::new();
    for contact in sorted {
        match runs.last_mut() {
            Some(run)
                if run.last().is_some_and(|last| {
                    last.topic == contact.topic
                        && contact.started_at_ms - last.started_at_ms <= JOURNEY_GAP_MS
                }) =>
            {
                run.push(contact);
            }
            _ => runs.push(vec![contact]),
        }
    }
    runs.into_iter().map(|run| journey(&run)).collect()
}

fn journey(run: &[&Contact]) -> Journey {
    let mut channels: Vec<Channel> = run.iter().map(|c| c.channel).collect();
    let channel_switches = channels.windows(2).filter(|w| w[0] != w[1]).count();
    channels.sort();
    channels.dedup();
    let resolved = run.last().is_some_and(|c| c.resolved);
    Journey {
        journey_id: journey_id(&run[0].contact_id),
        topic: run[0].topic,
        started_at_ms: run[0].started_at_ms,
        contact_ids: run.iter().map(|c| c.contact_id.clone()).collect(),
        channel_count: channels.len(),
        channel_switches,
        resolved,
        one_contact_resolution: run.len() == 1 && resolved,
    }
}

fn journey_id(first_contact: &str) -> String {
    let hash = Sha256::digest(first_contact.as_bytes());
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("j_{hex}")
}

#[cfg(test)]
mod tests;
