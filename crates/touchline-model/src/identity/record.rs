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
    let mut found = Found::default();
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

#[derive(Default)]
struct Found {
    ids: Vec<Identifier>,
    rejects: Vec<IdentifierError>,
}

impl Found {
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
}

fn chatbot(e: &ChatbotEvent, found: &mut Found) {
    if let Some(user) = &e.user {
        found.add_some(user.account_id.as_deref(), Identifier::account);
        found.add_some(user.email.as_deref(), Identifier::email);
        found.add_some(user.phone.as_deref(), Identifier::phone);
    }
    found.add(Identifier::visitor(&e.visitor_id));
}

fn app(e: &AppEvent, found: &mut Found) {
    found.add_some(e.user_id.as_deref(), Identifier::account);
    found.add_some(e.traits.get("email").map(String::as_str), Identifier::email);
    found.add_some(e.traits.get("phone").map(String::as_str), Identifier::phone);
    found.add(Identifier::device(&e.device_id));
}

fn social(e: &SocialEvent, found: &mut Found) {
    if e.author_is_brand {
        return;
    }
    if let Some(customer) = &e.linked_customer {
        found.add_some(customer.account_id.as_deref(), Identifier::account);
        found.add_some(customer.email.as_deref(), Identifier::email);
        found.add_some(customer.phone.as_deref(), Identifier::phone);
    }
    found.add(Identifier::social(&e.platform, &e.author_handle));
}

fn call_center(e: &CallRecord, found: &mut Found) {
    found.add_some(e.account_id.as_deref(), Identifier::account);
    found.add(Identifier::phone(&e.caller_number));
}

#[cfg(test)]
mod tests;
