//! Which identifiers one source event carries (`SPEC.md` §3, column "from").
//!
//! | channel | fields |
//! |---|---|
//! | chatbot | `user.account_id`, `user.email`, `user.phone`, `visitor_id` |
//! | app | `user_id` (account), `traits["email"]`, `traits["phone"]`, `device_id` |
//! | social | `linked_customer.{account_id, email, phone}`, `author_handle` on `platform` |
//! | call center | `account_id`, `caller_number` (`ani` in `callcenter.v1`) |
//!
//! A message written by the brand (`author_is_brand`) carries no customer
//! identifier at all: neither the brand's handle nor a `linked_customer`,
//! which on a brand reply names the customer the agent answers, not its
//! author. Every pair of the identifiers returned for one event is linked.

use std::collections::HashMap;

use super::identifier::{Identifier, IdentifierError};
use crate::source::{AppEvent, CallRecord, ChatbotEvent, SocialEvent, SourceRecord};

/// The normalised, de-duplicated identifiers of one event, sorted in anchor
/// order (kind, then value). Values that do not normalise are dropped; see
/// [`identifiers_with_rejects`] to count them.
pub fn identifiers(record: &SourceRecord) -> Vec<Identifier> {
    identifiers_with_rejects(record).0
}

/// Like [`identifiers`], and also the reasons why present values were
/// dropped (absent optional fields are not rejects), e.g. for a metric of
/// dropped identifiers by [`IdentifierError::reason`].
pub fn identifiers_with_rejects(record: &SourceRecord) -> (Vec<Identifier>, Vec<IdentifierError>) {
    collect(record, None)
}

/// Like [`identifiers`], with the normal forms of raw phone numbers looked up
/// in (and added to) `cache`: libphonenumber takes microseconds per number,
/// and a customer's events repeat the same few raw strings. The result is
/// the same as without the cache.
pub fn identifiers_cached(record: &SourceRecord, cache: &mut PhoneCache) -> Vec<Identifier> {
    collect(record, Some(cache)).0
}

fn collect(
    record: &SourceRecord,
    cache: Option<&mut PhoneCache>,
) -> (Vec<Identifier>, Vec<IdentifierError>) {
    let mut found = Found {
        ids: Vec::with_capacity(4),
        rejects: Vec::new(),
        cache,
    };
    match record {
        SourceRecord::Chatbot(e) => chatbot(e, &mut found),
        SourceRecord::App(e) => app(e, &mut found),
        SourceRecord::Social(e) => social(e, &mut found),
        SourceRecord::CallCenter(e) => call_center(e, &mut found),
    }
    found.ids.sort_unstable();
    found.ids.dedup();
    (found.ids, found.rejects)
}

/// Raw phone strings and their normal forms (or why they have none), at most
/// `capacity` of them in each of two generations: when the young generation
/// is full it becomes the old one and the previous old one is dropped, so
/// strings in recent use stay without a per-entry recency list. Memory is
/// bounded by `2 * capacity` entries.
#[derive(Debug)]
pub struct PhoneCache {
    young: HashMap<Box<str>, Result<Identifier, IdentifierError>>,
    old: HashMap<Box<str>, Result<Identifier, IdentifierError>>,
    capacity: usize,
    hits: u64,
    misses: u64,
}

impl PhoneCache {
    /// A cache of at most `2 * capacity` raw strings.
    pub fn new(capacity: usize) -> Self {
        PhoneCache {
            young: HashMap::new(),
            old: HashMap::new(),
            capacity: capacity.max(1),
            hits: 0,
            misses: 0,
        }
    }

    /// [`Identifier::phone`] of `raw`, from the cache when it has it.
    pub fn phone(&mut self, raw: &str) -> Result<Identifier, IdentifierError> {
        if let Some(found) = self.young.get(raw) {
            self.hits += 1;
            return found.clone();
        }
        let found = match self.old.remove(raw) {
            Some(found) => {
                self.hits += 1;
                found
            }
            None => {
                self.misses += 1;
                Identifier::phone(raw)
            }
        };
        if self.young.len() >= self.capacity {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(raw.into(), found.clone());
        found
    }

    /// Look-ups answered from the cache, and those that parsed the number.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Raw strings held.
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    /// Whether no string is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Found<'a> {
    ids: Vec<Identifier>,
    rejects: Vec<IdentifierError>,
    cache: Option<&'a mut PhoneCache>,
}

impl Found<'_> {
    fn add(&mut self, id: Result<Identifier, IdentifierError>) {
        match id {
            Ok(id) => self.ids.push(id),
            Err(error) => self.rejects.push(error),
        }
    }

    fn add_some(
        &mut self,
        raw: Option<&str>,
        normalise: fn(&str) -> Result<Identifier, IdentifierError>,
    ) {
        if let Some(raw) = raw {
            self.add(normalise(raw));
        }
    }

    fn add_phone(&mut self, raw: Option<&str>) {
        let Some(raw) = raw else { return };
        let id = match self.cache.as_deref_mut() {
            Some(cache) => cache.phone(raw),
            None => Identifier::phone(raw),
        };
        self.add(id);
    }
}

fn chatbot(e: &ChatbotEvent, found: &mut Found) {
    if let Some(user) = &e.user {
        found.add_some(user.account_id.as_deref(), Identifier::account);
        found.add_some(user.email.as_deref(), Identifier::email);
        found.add_phone(user.phone.as_deref());
    }
    found.add(Identifier::visitor(&e.visitor_id));
}

fn app(e: &AppEvent, found: &mut Found) {
    found.add_some(e.user_id.as_deref(), Identifier::account);
    found.add_some(e.traits.get("email").map(String::as_str), Identifier::email);
    found.add_phone(e.traits.get("phone").map(String::as_str));
    found.add(Identifier::device(&e.device_id));
}

fn social(e: &SocialEvent, found: &mut Found) {
    if e.author_is_brand {
        return;
    }
    if let Some(customer) = &e.linked_customer {
        found.add_some(customer.account_id.as_deref(), Identifier::account);
        found.add_some(customer.email.as_deref(), Identifier::email);
        found.add_phone(customer.phone.as_deref());
    }
    found.add(Identifier::social(&e.platform, &e.author_handle));
}

fn call_center(e: &CallRecord, found: &mut Found) {
    found.add_some(e.account_id.as_deref(), Identifier::account);
    found.add_phone(Some(&e.caller_number));
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod cache_tests {
    use super::*;

    #[test]
    fn the_cache_gives_what_parsing_gives_and_stays_bounded() {
        let raws = [
            "010-1234-5678",
            "+82 10 1234 5678",
            "anonymous",
            "12345",
            "  ",
            "02-312-3456",
            "010-1234-5678",
            "+1 650 253 0000",
        ];
        let mut cache = PhoneCache::new(2);
        for round in 0..3 {
            for raw in raws {
                assert_eq!(
                    cache.phone(raw),
                    Identifier::phone(raw),
                    "{raw} in round {round}"
                );
                assert!(cache.len() <= 4);
            }
        }
        let (hits, misses) = cache.hits_and_misses();
        assert_eq!(hits + misses, 3 * raws.len() as u64);
        assert!(hits > 0);
    }

    #[test]
    fn cached_identifiers_equal_uncached_ones() {
        let record = SourceRecord::CallCenter(CallRecord {
            call_id: "c-1".into(),
            record_type: "CALL_COMPLETED".into(),
            started_at: 0,
            caller_number: "010.1234.5678".into(),
            account_id: Some(" A-1 ".into()),
            queue: "billing".into(),
            agent_id: None,
            wait_seconds: 0,
            talk_seconds: 0,
            hold_seconds: 0,
            wrap_seconds: 0,
            transfers: 0,
            disposition: None,
            survey: None,
            recording_consent: false,
        });
        let mut cache = PhoneCache::new(16);
        for _ in 0..2 {
            assert_eq!(
                identifiers_cached(&record, &mut cache),
                identifiers(&record)
            );
        }
        assert_eq!(cache.hits_and_misses(), (1, 1));
    }
}
