//! Erasure of one customer (`touchline forget`): every table that holds a
//! customer's data, and the columns that name them, in one list ([`TARGETS`]).
//!
//! A table is matched by what its columns hold:
//! - [`By::Identifier`]: a stored identifier (`Pseudonymiser::stored`), such
//!   as an identity key or an anchor;
//! - [`By::Customer`]: a customer id;
//! - [`By::Contact`]: a contact id of one of the customer's events (the
//!   brand's replies in the customer's threads carry no identifier);
//! - [`By::Raw`]: bytes as the source systems sent them (dead letters), by
//!   the needles of [`touchline_model::privacy::raw_needles`]: substrings,
//!   case-insensitive, and phone numbers by their digits.
//!
//! A new table that holds identifiers, customer ids or contact ids gets a
//! line here; `tests/privacy.rs` scans every String column of every table
//! after a `forget` and fails on anything left. Tables that do not exist
//! (an older schema) are skipped. Deletes are ClickHouse mutations (`ALTER
//! TABLE ... DELETE`), asynchronous: [`erase`] waits until they are done.

use std::time::{Duration, Instant};

use clickhouse::Row;
use serde::Deserialize;
use touchline_model::privacy::Needle;

use crate::error::SinkError;
use crate::warehouse::{Count, Warehouse};

/// What a column holds, and so what it is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// A stored identifier.
    Identifier(&'static str),
    /// A customer id.
    Customer(&'static str),
    /// A contact id.
    Contact(&'static str),
    /// Raw upstream bytes.
    Raw(&'static str),
}

/// A table and the columns by which a customer's rows are found in it.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub table: &'static str,
    pub by: &'static [By],
}

/// Every table that can hold a customer's data. Tables of aggregates
/// (`channel_daily`, `consistency_daily`) hold counts, no identifier, and are
/// not listed; `docs/design/20261122_privacy.md` says what erasure does to
/// them.
pub const TARGETS: &[Target] = &[
    Target {
        table: "timeline_events",
        by: &[By::Identifier("identity_key"), By::Contact("contact_id")],
    },
    Target {
        table: "identity_assignments",
        by: &[
            By::Identifier("identifier"),
            By::Identifier("anchor"),
            By::Customer("customer_id"),
        ],
    },
    Target {
        table: "message_texts",
        by: &[By::Identifier("identity_key"), By::Contact("contact_id")],
    },
    Target {
        table: "dead_letter_log",
        by: &[By::Raw("key"), By::Raw("payload")],
    },
    Target {
        table: "contact_facts",
        by: &[By::Identifier("identity_key"), By::Contact("contact_id")],
    },
    Target {
        table: "contacts",
        by: &[By::Identifier("identity_key"), By::Contact("contact_id")],
    },
    Target {
        table: "scores",
        by: &[By::Identifier("identity_key")],
    },
    Target {
        table: "identity_channels",
        by: &[By::Identifier("identity_key")],
    },
    Target {
        table: "customer_state",
        by: &[By::Customer("customer_id")],
    },
];

/// Where a customer's data has days that the daily aggregates are computed
/// by (`channel_daily`, `consistency_daily`): a table of [`TARGETS`] and the
/// expression of the UTC day (days since the Unix epoch) of its rows. After
/// an erasure, `touchline forget` has those days recomputed.
pub const DAYS: &[(&str, &str)] = &[
    ("contacts", "toUInt16(toDate(started_at))"),
    ("scores", "toUInt16(day)"),
    (
        "customer_state",
        "toUInt16(intDiv(arrayJoin(journey_started_at_ms), 86400000))",
    ),
];

/// One customer, as the tables name them.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// Stored forms of every identifier of the customer.
    pub identifiers: Vec<String>,
    /// Every customer id anchored at one of those identifiers.
    pub customer_ids: Vec<String>,
    /// Needles for raw bytes.
    pub needles: Vec<Needle>,
}

/// Rows of one table that matched, before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    pub table: &'static str,
    /// Matching rows found before the delete.
    pub rows: u64,
}

#[derive(Row, Deserialize)]
struct Name {
    name: String,
}

#[derive(Row, Deserialize)]
struct DayRow {
    day: u16,
}

#[derive(Row, Deserialize)]
struct ContactRow {
    contact_id: String,
}

/// A ClickHouse string literal.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn list(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| quote(v)).collect();
    quoted.join(", ")
}

/// The condition that selects the subject's rows of `target`, or `None`
/// when the subject gives nothing to match it by.
fn condition(target: &Target, subject: &Subject, contacts: &[String]) -> Option<String> {
    let mut parts = Vec::new();
    for by in target.by {
        match *by {
            By::Identifier(column) if !subject.identifiers.is_empty() => {
                parts.push(format!("`{column}` IN ({})", list(&subject.identifiers)));
            }
            By::Customer(column) if !subject.customer_ids.is_empty() => {
                parts.push(format!("`{column}` IN ({})", list(&subject.customer_ids)));
            }
            By::Contact(column) if !contacts.is_empty() => {
                parts.push(format!("`{column}` IN ({})", list(contacts)));
            }
            By::Raw(column) => {
                for needle in &subject.needles {
                    parts.push(match needle {
                        Needle::Text(text) => {
                            format!("positionCaseInsensitive(`{column}`, {}) > 0", quote(text))
                        }
                        Needle::Digits(digits) => format!(
                            "position(replaceRegexpAll(`{column}`, '[^0-9]', ''), {}) > 0",
                            quote(digits)
                        ),
                    });
                }
            }
            _ => {}
        }
    }
    (!parts.is_empty()).then(|| parts.join(" OR "))
}

/// The tables of [`TARGETS`] that exist in the database.
async fn existing(warehouse: &Warehouse) -> Result<Vec<&'static Target>, SinkError> {
    let names: Vec<String> = warehouse
        .client()
        .query("SELECT name FROM system.tables WHERE database = ?")
        .bind(warehouse.database())
        .fetch_all::<Name>()
        .await?
        .into_iter()
        .map(|row| row.name)
        .collect();
    Ok(TARGETS
        .iter()
        .filter(|t| names.iter().any(|n| n == t.table))
        .collect())
}

/// The contact ids of the subject's events.
pub async fn contacts_of(
    warehouse: &Warehouse,
    subject: &Subject,
) -> Result<Vec<String>, SinkError> {
    if subject.identifiers.is_empty() {
        return Ok(Vec::new());
    }
    let mut contacts = Vec::new();
    for table in ["timeline_events", "contact_facts"] {
        if !existing(warehouse).await?.iter().any(|t| t.table == table) {
            continue;
        }
        let sql = format!(
            "SELECT DISTINCT contact_id FROM {{database}}.{table} \
             WHERE identity_key IN ({}) AND contact_id != ''",
            list(&subject.identifiers)
        );
        for row in warehouse.fetch_all::<ContactRow>(&sql).await? {
            if !contacts.contains(&row.contact_id) {
                contacts.push(row.contact_id);
            }
        }
    }
    contacts.sort();
    Ok(contacts)
}

/// The days ([`DAYS`]) of the subject's rows, to recompute once they are
/// deleted.
pub async fn days_of(
    warehouse: &Warehouse,
    subject: &Subject,
    contacts: &[String],
) -> Result<Vec<u16>, SinkError> {
    let mut days = Vec::new();
    for target in existing(warehouse).await? {
        let Some((_, day)) = DAYS.iter().find(|(table, _)| *table == target.table) else {
            continue;
        };
        let Some(condition) = condition(target, subject, contacts) else {
            continue;
        };
        let sql = format!(
            "SELECT DISTINCT {day} AS day FROM {{database}}.{} WHERE {condition}",
            target.table
        );
        days.extend(
            warehouse
                .fetch_all::<DayRow>(&sql)
                .await?
                .into_iter()
                .map(|r| r.day),
        );
    }
    days.sort_unstable();
    days.dedup();
    Ok(days)
}

/// How many rows of each existing target match the subject (and its
/// `contacts`).
pub async fn remaining(
    warehouse: &Warehouse,
    subject: &Subject,
    contacts: &[String],
) -> Result<Vec<Erased>, SinkError> {
    let mut counts = Vec::new();
    for target in existing(warehouse).await? {
        let Some(condition) = condition(target, subject, contacts) else {
            continue;
        };
        let sql = format!(
            "SELECT count() AS n FROM {{database}}.{} WHERE {condition}",
            target.table
        );
        counts.push(Erased {
            table: target.table,
            rows: warehouse.count(&sql).await?,
        });
    }
    Ok(counts)
}

/// Deletes the subject's rows (and those of its `contacts`) from every
/// existing target and waits, up to `timeout`, until ClickHouse has applied
/// the deletes. Returns the rows each table matched before.
pub async fn erase(
    warehouse: &Warehouse,
    subject: &Subject,
    contacts: &[String],
    timeout: Duration,
) -> Result<Vec<Erased>, SinkError> {
    let before = remaining(warehouse, subject, contacts).await?;
    for target in existing(warehouse).await? {
        let matched = before.iter().any(|e| e.table == target.table && e.rows > 0);
        let Some(condition) = condition(target, subject, contacts).filter(|_| matched) else {
            continue;
        };
        warehouse
            .execute(&format!(
                "ALTER TABLE {{database}}.{} DELETE WHERE {condition}",
                target.table
            ))
            .await?;
    }
    wait_for_mutations(warehouse, timeout).await?;
    Ok(before)
}

/// Waits until no mutation of the database is pending.
pub async fn wait_for_mutations(warehouse: &Warehouse, timeout: Duration) -> Result<(), SinkError> {
    let started = Instant::now();
    loop {
        let pending = warehouse
            .client()
            .query("SELECT count() AS n FROM system.mutations WHERE database = ? AND is_done = 0")
            .bind(warehouse.database())
            .fetch_all::<Count>()
            .await?
            .first()
            .map_or(0, |c| c.n);
        if pending == 0 {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(SinkError::Schema(format!(
                "{pending} deletes still pending after {} s; see system.mutations",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_quote_and_match_every_column() {
        let subject = Subject {
            identifiers: vec!["email:o'neil@example.com".into()],
            customer_ids: vec!["c_0123456789abcdef".into()],
            needles: vec![
                Needle::Text("o'neil@example.com".into()),
                Needle::Digits("1012345678".into()),
            ],
        };
        let assignments = TARGETS
            .iter()
            .find(|t| t.table == "identity_assignments")
            .expect("listed");
        assert_eq!(
            condition(assignments, &subject, &[]).as_deref(),
            Some(
                "`identifier` IN ('email:o\\'neil@example.com') OR `anchor` IN \
                 ('email:o\\'neil@example.com') OR `customer_id` IN ('c_0123456789abcdef')"
            )
        );
        let dead = TARGETS
            .iter()
            .find(|t| t.table == "dead_letter_log")
            .expect("listed");
        let sql = condition(dead, &subject, &[]).expect("needles");
        assert!(
            sql.contains("positionCaseInsensitive(`payload`, 'o\\'neil@example.com')"),
            "{sql}"
        );
        assert!(
            sql.contains("replaceRegexpAll(`key`, '[^0-9]', ''), '1012345678'"),
            "{sql}"
        );
        let timeline = &TARGETS[0];
        assert_eq!(
            condition(timeline, &Subject::default(), &["chatbot:c1".into()]).as_deref(),
            Some("`contact_id` IN ('chatbot:c1')")
        );
        assert_eq!(condition(timeline, &Subject::default(), &[]), None);
    }

    #[test]
    fn every_table_is_listed_once_and_every_day_table_is_a_target() {
        let mut names: Vec<&str> = TARGETS.iter().map(|t| t.table).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TARGETS.len());
        for (table, _) in DAYS {
            assert!(names.contains(table), "{table}");
        }
    }
}
