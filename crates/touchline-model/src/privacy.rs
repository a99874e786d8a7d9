//! Privacy of customer data: the one place where an identifier becomes the
//! string stored in ClickHouse, the fingerprints of the suppression list, and
//! which message text may be kept (design: `docs/design/20261122_privacy.md`).
//!
//! # Stored forms
//!
//! [`Pseudonymiser::stored`] is the only conversion from an [`Identifier`]
//! to the string every table holds (identity keys, identifiers, anchors,
//! contacts, ...). Disabled, it is the typed normal form
//! (`email:kim@example.com`). Keyed, emails, phone numbers and social handles
//! become `<kind>:` and 32 lower-case hex digits, the first 16 bytes of
//! HMAC-SHA256(key, typed normal form): `email:5d41402abc4b2a76b9719d911017c592`.
//! Accounts, devices and visitors, which are the company's own opaque ids,
//! stay as they are. Keyed, customer ids are keyed too
//! ([`Pseudonymiser::customer_id`]): an unkeyed hash of a phone number is
//! reversed by trying every number.
//!
//! Identity resolution itself works on normal forms in memory, so it gives
//! the same customers whether or not the stored forms are hashed.
//!
//! # Fingerprints
//!
//! [`Pseudonymiser::fingerprint`] is what the suppression list holds for an
//! erased identifier: the full HMAC-SHA256 of its typed normal form when a
//! key is set, else its plain SHA-256 (which a key should replace: without
//! one, a phone number's fingerprint can be found by enumeration).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::identity::{CustomerId, IdKind, Identifier};
use crate::source::SourceRecord;
use crate::Channel;

/// Bytes of HMAC kept in a stored form: 16 (128 bits; RFC 2104 allows
/// truncation to half the output), 32 hex digits.
const STORED_BYTES: usize = 16;
/// A key shorter than this is refused: the key is the only thing between a
/// stored hash and the phone number it hides.
pub const MIN_KEY_BYTES: usize = 32;

/// Why a key cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum KeyError {
    /// Too short to resist a search.
    #[error(
        "the pseudonymisation key has {0} bytes; use at least 32 (e.g. `openssl rand -hex 32`)"
    )]
    TooShort(usize),
}

/// Turns identifiers into their stored form, keyed or not. Cheap to clone
/// (the keyed state is precomputed once).
#[derive(Clone)]
pub struct Pseudonymiser {
    mac: Option<Hmac<Sha256>>,
}

/// Never shows the key.
impl fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_enabled() {
            "Pseudonymiser(keyed)"
        } else {
            "Pseudonymiser(disabled)"
        })
    }
}

impl Default for Pseudonymiser {
    fn default() -> Self {
        Pseudonymiser::disabled()
    }
}

impl Pseudonymiser {
    /// Stored forms are the typed normal forms; customer ids as
    /// [`CustomerId`] computes them.
    pub fn disabled() -> Pseudonymiser {
        Pseudonymiser { mac: None }
    }

    /// Emails, phone numbers and social handles stored as HMAC-SHA256 under
    /// `key` (at least [`MIN_KEY_BYTES`] bytes).
    pub fn keyed(key: &[u8]) -> Result<Pseudonymiser, KeyError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort(key.len()));
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| KeyError::TooShort(0))?;
        Ok(Pseudonymiser { mac: Some(mac) })
    }

    /// Whether stored forms are keyed hashes.
    pub fn is_enabled(&self) -> bool {
        self.mac.is_some()
    }

    /// Whether identifiers of `kind` are hashed when a key is set: emails,
    /// phone numbers and social handles.
    pub fn hashes(kind: IdKind) -> bool {
        matches!(kind, IdKind::Email | IdKind::Phone | IdKind::Social)
    }

    /// The string stored in ClickHouse for `id`: its typed normal form, or,
    /// keyed and for a hashed kind, `<kind>:` and 32 hex digits of its HMAC.
    pub fn stored(&self, id: &Identifier) -> String {
        match &self.mac {
            Some(mac) if Pseudonymiser::hashes(id.kind()) => {
                let digest = keyed(mac, &[id.kind().as_str(), ":", id.value()]);
                let mut out =
                    String::with_capacity(id.kind().as_str().len() + 1 + 2 * STORED_BYTES);
                out.push_str(id.kind().as_str());
                out.push(':');
                push_hex(&mut out, &digest[..STORED_BYTES]);
                out
            }
            _ => id.to_string(),
        }
    }

    /// The stored form of a typed identifier as a person types it (`email:
    /// Kim@Example.com `), normalised first; the dashboards' lookup.
    pub fn stored_typed(&self, typed: &str) -> Result<String, crate::IdentifierError> {
        Ok(self.stored(&Identifier::parse(typed)?))
    }

    /// The customer id of the customer anchored at `anchor`. Disabled:
    /// [`CustomerId::of`] (`c_` and 16 hex digits of SHA-256 of the anchor).
    /// Keyed: `c_` and 16 hex digits of HMAC-SHA256(key, `customer:` and
    /// the anchor's typed form), whatever the anchor's kind.
    pub fn customer_id(&self, anchor: &Identifier) -> String {
        match &self.mac {
            Some(mac) => {
                let digest = keyed(
                    mac,
                    &["customer:", anchor.kind().as_str(), ":", anchor.value()],
                );
                let mut out = String::with_capacity(18);
                out.push_str("c_");
                push_hex(&mut out, &digest[..8]);
                out
            }
            None => CustomerId::of(anchor).to_string(),
        }
    }

    /// The suppression-list fingerprint of `id`: HMAC-SHA256 of its typed
    /// normal form when keyed, else SHA-256.
    pub fn fingerprint(&self, id: &Identifier) -> Fingerprint {
        let parts = [id.kind().as_str(), ":", id.value()];
        match &self.mac {
            Some(mac) => Fingerprint(keyed(mac, &parts)),
            None => {
                let mut hasher = Sha256::new();
                for part in parts {
                    hasher.update(part.as_bytes());
                }
                Fingerprint(hasher.finalize().into())
            }
        }
    }
}

fn keyed(mac: &Hmac<Sha256>, parts: &[&str]) -> [u8; 32] {
    let mut mac = mac.clone();
    for part in parts {
        mac.update(part.as_bytes());
    }
    mac.finalize().into_bytes().into()
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
}

/// The fingerprint of an erased identifier on the suppression list: 32
/// bytes, written as 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Parses 64 hex digits (either case).
    pub fn parse_hex(text: &str) -> Option<Fingerprint> {
        let text = text.trim().as_bytes();
        if text.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, pair) in text.chunks(2).enumerate() {
            let digit = |c: u8| char::from(c).to_digit(16);
            let (high, low) = (digit(pair[0])?, digit(pair[1])?);
            bytes[i] = u8::try_from(high * 16 + low).ok()?;
        }
        Some(Fingerprint(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(64);
        push_hex(&mut out, &self.0);
        f.write_str(&out)
    }
}

/// The free text a record carries: a chatbot message's `text`, a social
/// message's `text` (the brand's replies too); `None` for other channels and
/// for empty text. Stored only for the channels the configuration enables.
pub fn free_text(record: &SourceRecord) -> Option<&str> {
    let text = match record {
        SourceRecord::Chatbot(event) => event.text.as_deref()?,
        SourceRecord::Social(event) => event.text.as_str(),
        SourceRecord::App(_) | SourceRecord::CallCenter(_) => return None,
    };
    (!text.trim().is_empty()).then_some(text)
}

/// What to look for in raw upstream bytes (dead letters) to find a
/// customer's messages, which were never parsed into identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needle {
    /// A substring, matched case-insensitively.
    Text(String),
    /// A run of digits within the bytes' digits (separators removed): the
    /// national significant number of a phone, however it was written
    /// (`010-1234-5678`, `+82 10 1234 5678`, `01012345678`).
    Digits(String),
}

/// Shortest text needle worth matching: shorter ones (a handle `kim`)
/// would match unrelated messages.
const MIN_NEEDLE: usize = 4;

/// The needles that find `id` in raw bytes: an email as written (any case),
/// a phone by its national number's digits, a social handle, an account,
/// device or visitor id as written. Values shorter than 4 characters give
/// none.
pub fn raw_needles(id: &Identifier) -> Vec<Needle> {
    let value = id.value();
    let text = match id.kind() {
        IdKind::Email => value,
        IdKind::Phone => {
            let digits = phonenumber::parse(None, value)
                .map(|number| number.national().value().to_string())
                .unwrap_or_else(|_| value.chars().filter(char::is_ascii_digit).collect());
            return if digits.len() >= MIN_NEEDLE {
                vec![Needle::Digits(digits)]
            } else {
                Vec::new()
            };
        }
        IdKind::Social => value.split_once(':').map_or(value, |(_, handle)| handle),
        IdKind::Account | IdKind::Device | IdKind::Visitor => value,
    };
    if text.chars().count() >= MIN_NEEDLE {
        vec![Needle::Text(text.to_owned())]
    } else {
        Vec::new()
    }
}

/// Channels whose records carry free text ([`free_text`]).
pub const TEXT_CHANNELS: [Channel; 2] = [Channel::Chatbot, Channel::Social];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{ChatbotEvent, SocialEvent};

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn id(typed: &str) -> Identifier {
        Identifier::parse(typed).expect("valid")
    }

    #[test]
    fn disabled_stores_the_typed_normal_form_and_the_plain_customer_id() {
        let plain = Pseudonymiser::disabled();
        let email = id("email: Kim@Example.com ");
        assert_eq!(plain.stored(&email), "email:kim@example.com");
        assert_eq!(
            plain.customer_id(&email),
            CustomerId::of(&email).to_string()
        );
        assert!(!plain.is_enabled());
    }

    /// HMAC-SHA256 as RFC 4231 test case 2 defines it, through the same
    /// code path (`keyed`) with a short key the constructor would refuse.
    #[test]
    fn hmac_matches_rfc_4231() {
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").expect("any length");
        let digest = keyed(&mac, &["what do ya want ", "for nothing?"]);
        let mut hex = String::new();
        push_hex(&mut hex, &digest);
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn keyed_hashes_emails_phones_and_handles_only() {
        let keyed = Pseudonymiser::keyed(KEY).expect("long enough");
        let email = keyed.stored(&id("email:kim@example.com"));
        assert!(email.starts_with("email:"), "{email}");
        assert_eq!(email.len(), "email:".len() + 32);
        assert!(!email.contains("kim"));
        // The same identifier, however it was written, has one stored form.
        assert_eq!(keyed.stored(&id("email:KIM@example.com ")), email);
        assert_eq!(
            keyed.stored_typed(" email:Kim@Example.COM").as_deref(),
            Ok(email.as_str())
        );
        let phone = keyed.stored(&id("phone:010-1234-5678"));
        assert!(
            phone.starts_with("phone:") && !phone.contains("1234"),
            "{phone}"
        );
        let social = keyed.stored(&id("social:instagram:@Kim.Lee"));
        assert!(
            social.starts_with("social:") && !social.contains("kim"),
            "{social}"
        );
        assert_eq!(social.matches(':').count(), 1);
        for typed in ["account:AC-1", "device:d-1", "visitor:v-1"] {
            assert_eq!(keyed.stored(&id(typed)), typed);
        }
        // Another key, other hashes.
        let other = Pseudonymiser::keyed(b"another key that is long enough!!").expect("ok");
        assert_ne!(other.stored(&id("email:kim@example.com")), email);
    }

    #[test]
    fn keyed_customer_ids_differ_from_the_plain_ones_and_keep_their_shape() {
        let keyed = Pseudonymiser::keyed(KEY).expect("ok");
        let anchor = id("phone:+821012345678");
        let customer = keyed.customer_id(&anchor);
        assert!(
            customer.starts_with("c_") && customer.len() == 18,
            "{customer}"
        );
        assert_ne!(customer, CustomerId::of(&anchor).to_string());
        assert_eq!(keyed.customer_id(&anchor), customer);
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(
            Pseudonymiser::keyed(b"short").map(|_| ()),
            Err(KeyError::TooShort(5))
        );
        assert!(!format!("{:?}", Pseudonymiser::keyed(KEY)).contains("0123"));
    }

    #[test]
    fn fingerprints_round_trip_through_hex_and_depend_on_the_key() {
        let keyed = Pseudonymiser::keyed(KEY).expect("ok");
        let email = id("email:kim@example.com");
        let print = keyed.fingerprint(&email);
        assert_eq!(Fingerprint::parse_hex(&print.to_string()), Some(print));
        assert!(keyed.stored(&email).ends_with(&print.to_string()[..32]));
        assert_ne!(Pseudonymiser::disabled().fingerprint(&email), print);
        assert_eq!(Fingerprint::parse_hex("xyz"), None);
    }

    #[test]
    fn needles_find_identifiers_as_the_sources_write_them() {
        let needles = |typed: &str| raw_needles(&id(typed));
        assert_eq!(
            needles("email:Kim@Example.com"),
            [Needle::Text("kim@example.com".into())]
        );
        assert_eq!(
            needles("phone:010-1234-5678"),
            [Needle::Digits("1012345678".into())]
        );
        assert_eq!(
            needles("phone:+1 650 253 0000"),
            [Needle::Digits("6502530000".into())]
        );
        assert_eq!(
            needles("social:instagram:@Kim.Lee"),
            [Needle::Text("kim.lee".into())]
        );
        assert_eq!(needles("social:x:kim"), []);
        assert_eq!(needles("device:d-12345"), [Needle::Text("d-12345".into())]);
    }

    #[test]
    fn free_text_comes_from_chat_and_social_messages_only() {
        let chat = SourceRecord::Chatbot(ChatbotEvent {
            text: Some("my order 42 is late".into()),
            ..ChatbotEvent::default()
        });
        assert_eq!(free_text(&chat), Some("my order 42 is late"));
        let empty = SourceRecord::Social(SocialEvent {
            text: "  ".into(),
            ..SocialEvent::default()
        });
        assert_eq!(free_text(&empty), None);
        assert_eq!(free_text(&SourceRecord::App(Default::default())), None);
    }
}
