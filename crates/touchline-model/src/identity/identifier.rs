//! Identifier normalisation: one raw value to one typed normal form
//! (`SPEC.md` §3, the identifier table).
//!
//! | kind | normal form | rule |
//! |---|---|---|
//! | account | `account:<value>` | trimmed; case and inner spaces kept |
//! | email | `email:<value>` | trimmed, lower case; exactly one `@` with text on both sides and a `.` in the domain |
//! | phone | `phone:<E.164>` | libphonenumber rules, default region KR; invalid numbers and `anonymous` dropped |
//! | social | `social:<platform>:<handle>` | platform trimmed, lower case, no `:`; handle trimmed, leading `@`s removed, lower case |
//! | device | `device:<value>` | trimmed |
//! | visitor | `visitor:<value>` | trimmed |
//!
//! A value that is empty or white space is dropped for every kind.
//!
//! Choices where the spec is silent:
//! - device and visitor ids are trimmed like accounts: white space around an
//!   opaque id is never meaningful;
//! - lower case is Unicode lower case (`str::to_lowercase`);
//! - the email rule is exactly the spec's, no stricter: `a@.com` and `a b@c.de`
//!   are valid emails, so that the same rule is easy to state anywhere else;
//! - a phone extension (`+82 10 1234 5678 ext. 12`) is not part of the E.164
//!   form, so a number with and without extension is one identifier;
//! - `anonymous` is recognised in any letter case; any other word (`private`,
//!   `unknown`) is not a number and is dropped as invalid.
//!
//! # What libphonenumber does with Korean numbers
//!
//! Parsing uses the `phonenumber` crate (a port of Google's libphonenumber
//! with its metadata) with default region KR; the tests in
//! `identifier/tests.rs` pin these results:
//!
//! | written | E.164 |
//! |---|---|
//! | `010-1234-5678`, `01012345678`, `010 1234 5678`, `010.1234.5678` | `+821012345678` |
//! | `+82 10 1234 5678`, `+82-10-1234-5678`, `+82 (0)10 1234 5678` | `+821012345678` |
//! | `821012345678` (no `+`, as some carriers pass the caller id) | `+821012345678` |
//! | `02-312-3456` (Seoul land line), `(02) 312-3456` | `+8223123456` |
//! | `+1 650 253 0000`, `+81 90 1234 5678` | `+16502530000`, `+819012345678` |
//! | `010-1234`, `12345`, `1 650 253 0000` (read as Korean) | invalid, dropped |
//!
//! The bare `821012345678` works because libphonenumber, when a number starts
//! with the default region's country code and only the rest is a valid
//! national number, strips the country code.

use std::fmt;
use std::str::FromStr;

use phonenumber::country::Id as Region;
use phonenumber::Mode;
use thiserror::Error;

/// The kind of an identifier, in anchor order: a customer is named after its
/// account, else its email, phone, social handle, device, visitor (`SPEC.md` §3).
/// `Ord` follows this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdKind {
    /// A CRM account id.
    Account,
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// A social-media handle on one platform.
    Social,
    /// An app installation (or browser) id.
    Device,
    /// A chatbot web visitor id.
    Visitor,
}

impl IdKind {
    /// Every kind, in anchor order.
    pub const ALL: [IdKind; 6] = [
        IdKind::Account,
        IdKind::Email,
        IdKind::Phone,
        IdKind::Social,
        IdKind::Device,
        IdKind::Visitor,
    ];

    /// The prefix of the typed normal form, without the `:`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::Account => "account",
            IdKind::Email => "email",
            IdKind::Phone => "phone",
            IdKind::Social => "social",
            IdKind::Device => "device",
            IdKind::Visitor => "visitor",
        }
    }

    /// The kind whose prefix is `prefix` (exact, lower case), if any.
    pub fn from_prefix(prefix: &str) -> Option<IdKind> {
        IdKind::ALL.into_iter().find(|k| k.as_str() == prefix)
    }

    /// Position in anchor order, 0 for account. Stable: it is also the kind's
    /// byte in the identity graph's string arena.
    pub fn rank(self) -> u8 {
        match self {
            IdKind::Account => 0,
            IdKind::Email => 1,
            IdKind::Phone => 2,
            IdKind::Social => 3,
            IdKind::Device => 4,
            IdKind::Visitor => 5,
        }
    }

    /// The kind at position `rank` in anchor order.
    pub fn from_rank(rank: u8) -> Option<IdKind> {
        IdKind::ALL.get(usize::from(rank)).copied()
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a raw value is not an identifier. The value is dropped: the event
/// keeps its other identifiers. Messages never repeat the value, which is
/// personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum IdentifierError {
    /// The value is empty or only white space (for a social handle: also
    /// when nothing but `@` is left).
    #[error("{kind} value is empty or white space")]
    Empty {
        /// The kind the value was meant to be.
        kind: IdKind,
    },
    /// Not exactly one `@`, nothing before or after it, or no `.` in the
    /// domain.
    #[error("email is not `local@domain` with exactly one `@`, text on both sides and a `.` in the domain")]
    InvalidEmail,
    /// libphonenumber cannot parse the number or calls it invalid.
    #[error("phone number is not valid by libphonenumber rules (default region KR)")]
    InvalidPhone,
    /// The caller id was withheld: `anonymous`, in any letter case.
    #[error("phone number is `anonymous`: the caller id was withheld")]
    AnonymousPhone,
    /// The social platform is empty or contains `:`.
    #[error("social platform is empty or contains `:`")]
    InvalidPlatform,
    /// A typed string without `:` or with an unknown kind prefix (prefixes
    /// are lower case: `email:`, not `Email:`).
    #[error("typed identifier is not `<kind>:<value>` with a known kind")]
    NotTyped,
}

impl IdentifierError {
    /// A short, stable reason for metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            IdentifierError::Empty { .. } => "empty",
            IdentifierError::InvalidEmail => "invalid_email",
            IdentifierError::InvalidPhone => "invalid_phone",
            IdentifierError::AnonymousPhone => "anonymous_phone",
            IdentifierError::InvalidPlatform => "invalid_platform",
            IdentifierError::NotTyped => "not_typed",
        }
    }
}

/// A normalised, typed identifier. Its string form ([`Identifier::as_string`],
/// `Display`) is `<kind>:<value>`, the form in `v_identities`. `Ord` is
/// anchor order: kind first, then value (byte-wise).
///
/// Constructors normalise, so two `Identifier`s are equal exactly when their
/// normal forms are; normalising a normal form again gives it back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier {
    kind: IdKind,
    value: String,
}

impl Identifier {
    /// Normalises `raw` as an identifier of `kind`. For [`IdKind::Social`],
    /// `raw` is `<platform>:<handle>`.
    pub fn new(kind: IdKind, raw: &str) -> Result<Identifier, IdentifierError> {
        match kind {
            IdKind::Account => Identifier::account(raw),
            IdKind::Email => Identifier::email(raw),
            IdKind::Phone => Identifier::phone(raw),
            IdKind::Social => {
                let (platform, handle) = raw.split_once(':').ok_or(IdentifierError::NotTyped)?;
                Identifier::social(platform, handle)
            }
            IdKind::Device => Identifier::device(raw),
            IdKind::Visitor => Identifier::visitor(raw),
        }
    }

    /// Parses the typed form `<kind>:<value>` (`email:x@y.z`,
    /// `social:instagram:@Kim`) and normalises the value by its kind's rule.
    pub fn parse(typed: &str) -> Result<Identifier, IdentifierError> {
        let (prefix, raw) = typed.split_once(':').ok_or(IdentifierError::NotTyped)?;
        let kind = IdKind::from_prefix(prefix.trim()).ok_or(IdentifierError::NotTyped)?;
        Identifier::new(kind, raw)
    }

    /// Parses a typed form that Touchline wrote, a normal form already (the
    /// link topic's lines), without parsing a phone number again: for such
    /// a line, the same identifier as [`Identifier::parse`] gives. A phone
    /// value in E.164 form (`+`, then 7 to 15 digits, the first not 0) is
    /// taken as it is, since libphonenumber accepted it when the link was
    /// written (a later metadata update that would reject it leaves the
    /// link standing); parsing it again was most of what following the
    /// link topic cost. Anything else is normalised by [`Identifier::parse`].
    pub fn parse_normal(typed: &str) -> Result<Identifier, IdentifierError> {
        match typed.strip_prefix("phone:") {
            Some(value) if is_e164(value) => Ok(Identifier {
                kind: IdKind::Phone,
                value: value.to_owned(),
            }),
            _ => Identifier::parse(typed),
        }
    }

    /// `account:<trimmed>`.
    pub fn account(raw: &str) -> Result<Identifier, IdentifierError> {
        Ok(Identifier {
            kind: IdKind::Account,
            value: non_empty(IdKind::Account, raw)?.to_owned(),
        })
    }

    /// `email:<trimmed, lower case>`, valid only with exactly one `@`, text on
    /// both sides of it and a `.` in the domain.
    pub fn email(raw: &str) -> Result<Identifier, IdentifierError> {
        let value = non_empty(IdKind::Email, raw)?.to_lowercase();
        let mut parts = value.split('@');
        let valid = match (parts.next(), parts.next(), parts.next()) {
            (Some(local), Some(domain), None) => {
                !local.is_empty() && !domain.is_empty() && domain.contains('.')
            }
            _ => false,
        };
        if !valid {
            return Err(IdentifierError::InvalidEmail);
        }
        Ok(Identifier {
            kind: IdKind::Email,
            value,
        })
    }

    /// `phone:<E.164>`: parsed by libphonenumber rules with default region KR
    /// and kept only when libphonenumber calls the number valid; `anonymous`
    /// (any case) is dropped.
    pub fn phone(raw: &str) -> Result<Identifier, IdentifierError> {
        let trimmed = non_empty(IdKind::Phone, raw)?;
        if trimmed.eq_ignore_ascii_case("anonymous") {
            return Err(IdentifierError::AnonymousPhone);
        }
        let number = phonenumber::parse(Some(Region::KR), trimmed)
            .map_err(|_| IdentifierError::InvalidPhone)?;
        if !number.is_valid() {
            return Err(IdentifierError::InvalidPhone);
        }
        Ok(Identifier {
            kind: IdKind::Phone,
            value: number.format().mode(Mode::E164).to_string(),
        })
    }

    /// `social:<platform>:<handle>`: platform trimmed and lower case (it may
    /// not contain `:`); handle trimmed, without leading `@`, lower case.
    pub fn social(platform: &str, handle: &str) -> Result<Identifier, IdentifierError> {
        let platform = platform.trim();
        if platform.is_empty() || platform.contains(':') {
            return Err(IdentifierError::InvalidPlatform);
        }
        let handle = non_empty(IdKind::Social, handle)?
            .trim_start_matches('@')
            .trim_start();
        if handle.is_empty() {
            return Err(IdentifierError::Empty {
                kind: IdKind::Social,
            });
        }
        Ok(Identifier {
            kind: IdKind::Social,
            value: format!("{}:{}", platform.to_lowercase(), handle.to_lowercase()),
        })
    }

    /// `device:<trimmed>`.
    pub fn device(raw: &str) -> Result<Identifier, IdentifierError> {
        Ok(Identifier {
            kind: IdKind::Device,
            value: non_empty(IdKind::Device, raw)?.to_owned(),
        })
    }

    /// `visitor:<trimmed>`.
    pub fn visitor(raw: &str) -> Result<Identifier, IdentifierError> {
        Ok(Identifier {
            kind: IdKind::Visitor,
            value: non_empty(IdKind::Visitor, raw)?.to_owned(),
        })
    }

    /// The identifier's kind.
    pub fn kind(&self) -> IdKind {
        self.kind
    }

    /// The normalised value, without the kind prefix (`+821012345678`,
    /// `instagram:kim_j`).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The typed normal form, `<kind>:<value>`.
    pub fn as_string(&self) -> String {
        self.to_string()
    }

    /// Builds an identifier from parts that are already a normal form (the
    /// identity graph's arena). Not checked: callers hold normal forms only.
    pub(crate) fn from_normal_parts(kind: IdKind, value: String) -> Identifier {
        Identifier { kind, value }
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

impl FromStr for Identifier {
    type Err = IdentifierError;

    /// Same as [`Identifier::parse`].
    fn from_str(typed: &str) -> Result<Identifier, IdentifierError> {
        Identifier::parse(typed)
    }
}

/// Whether `value` is written as an E.164 number: `+`, then 7 to 15 digits,
/// the first not 0. Says nothing of whether the number exists.
fn is_e164(value: &str) -> bool {
    let Some(digits) = value.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

fn non_empty(kind: IdKind, raw: &str) -> Result<&str, IdentifierError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        Err(IdentifierError::Empty { kind })
    } else {
        Ok(trimmed)
    }
}

#[cfg(test)]
mod tests;
