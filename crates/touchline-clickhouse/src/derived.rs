//! Contacts, journeys and the daily metrics: the rows of the tables of
//! `0005_contacts_journeys.sql`, and the reads the pipeline recomputes them
//! from. No read touches the timeline. The reads by contact, identifier,
//! customer or day filter on the tables' keys, but a round's keys are spread
//! over a whole table, so a round reads most of `contact_facts` and of the
//! tables it looks customers up in: their cost grows with the tables, not
//! with the round (`BENCHMARKS.md`, "Next steps").

use std::collections::{HashMap, HashSet};

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use touchline_model::contact::{Contact, ContactFact, ContactKey, Journey, Role};
use touchline_model::metrics::{ChannelDay, ConsistencyDay, CustomerStats};
use touchline_model::{Channel, IdKind, Scores, Topic, UnifiedEvent};

use crate::error::SinkError;
use crate::rows::{epoch_seconds, Table};
use crate::warehouse::{Warehouse, MAX_AST_ELEMENTS, MAX_QUERY_BYTES};

impl Table for ContactFactRow {
    const NAME: &'static str = "contact_facts";
}

impl Table for ScoreRow {
    const NAME: &'static str = "scores";
}

impl Table for IdentityChannelRow {
    const NAME: &'static str = "identity_channels";
}

impl Table for ContactRow {
    const NAME: &'static str = "contacts";
}

impl Table for CustomerStateRow {
    const NAME: &'static str = "customer_state";
}

impl Table for ChannelDayRow {
    const NAME: &'static str = "channel_daily";
}

impl Table for ConsistencyDayRow {
    const NAME: &'static str = "consistency_daily";
}

/// Bytes of quoted values per listed array: half the client's query-size
/// limit ([`MAX_QUERY_BYTES`]), so that a whole derive round's contacts,
/// customers or keys (a few hundred thousand) take one query, one scan.
const LIST_BYTES: usize = MAX_QUERY_BYTES / 2;

/// Values per listed array: each is a syntax-tree node, and a query may
/// have [`MAX_AST_ELEMENTS`] of them.
const LIST_VALUES: usize = MAX_AST_ELEMENTS / 4;

/// A row of `contact_facts`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct ContactFactRow {
    pub contact_id: String,
    pub event_id: String,
    pub channel: i8,
    pub occurred_at_ms: i64,
    pub topic: i8,
    pub role: i8,
    pub opens: u8,
    pub resolves: Option<u8>,
    pub hands_off: u8,
    pub wait_seconds: Option<u32>,
    pub handle_seconds: Option<u32>,
    pub abandoned: u8,
    pub csat: Option<u8>,
    pub ces: Option<u8>,
    pub nps: Option<u8>,
    pub identity_key: String,
    pub identity_rank: u8,
    pub version: u64,
}

impl ContactFactRow {
    /// The row of `fact`, written at `version` (ingestion time).
    pub fn new(fact: &ContactFact, version: u64) -> ContactFactRow {
        let (identity_key, identity_rank) = fact
            .identity_key
            .as_ref()
            .map(|k| (k.stored.clone(), k.kind.rank()))
            .unwrap_or_default();
        ContactFactRow {
            contact_id: fact.contact_id.clone(),
            event_id: fact.event_id.clone(),
            channel: fact.channel.code(),
            occurred_at_ms: fact.occurred_at_ms,
            topic: fact.topic.code(),
            role: match fact.role {
                Role::Customer => 1,
                Role::Responder => 2,
                Role::Other => 3,
            },
            opens: u8::from(fact.opens),
            resolves: fact.resolves.map(u8::from),
            hands_off: u8::from(fact.hands_off),
            wait_seconds: fact.wait_seconds,
            handle_seconds: fact.handle_seconds,
            abandoned: u8::from(fact.abandoned),
            csat: fact.scores.csat,
            ces: fact.scores.ces,
            nps: fact.scores.nps,
            identity_key,
            identity_rank,
            version,
        }
    }

    /// The fact this row holds (`None` for codes this build does not know).
    pub fn fact(&self) -> Option<ContactFact> {
        let identity_key = if self.identity_key.is_empty() {
            None
        } else {
            Some(ContactKey {
                kind: IdKind::from_rank(self.identity_rank)?,
                stored: self.identity_key.clone(),
            })
        };
        Some(ContactFact {
            contact_id: self.contact_id.clone(),
            channel: Channel::from_code(self.channel)?,
            event_id: self.event_id.clone(),
            occurred_at_ms: self.occurred_at_ms,
            topic: Topic::from_code(self.topic)?,
            role: match self.role {
                1 => Role::Customer,
                2 => Role::Responder,
                _ => Role::Other,
            },
            opens: self.opens != 0,
            resolves: self.resolves.map(|r| r != 0),
            hands_off: self.hands_off != 0,
            wait_seconds: self.wait_seconds,
            handle_seconds: self.handle_seconds,
            abandoned: self.abandoned != 0,
            scores: Scores {
                csat: self.csat,
                ces: self.ces,
                nps: self.nps,
                sentiment: None,
            },
            identity_key,
        })
    }
}

/// A row of `scores`: one scored event.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct ScoreRow {
    /// Days since the Unix epoch (UTC) of the event.
    pub day: u16,
    pub channel: i8,
    pub event_id: String,
    pub identity_key: String,
    pub csat: Option<u8>,
    pub ces: Option<u8>,
    pub nps: Option<u8>,
    pub sentiment: Option<f32>,
    pub version: u64,
}

impl ScoreRow {
    /// The row of `event` if it carries a score.
    pub fn of(event: &UnifiedEvent, identity_key: &str, version: u64) -> Option<ScoreRow> {
        let s = event.scores;
        if s.csat.is_none() && s.ces.is_none() && s.nps.is_none() && s.sentiment.is_none() {
            return None;
        }
        Some(ScoreRow {
            day: day_of_ms(event.occurred_at_ms),
            channel: event.channel.code(),
            event_id: event.event_id.clone(),
            identity_key: identity_key.to_owned(),
            csat: s.csat,
            ces: s.ces,
            nps: s.nps,
            sentiment: s.sentiment,
            version,
        })
    }

    pub fn scores(&self) -> Scores {
        Scores {
            csat: self.csat,
            ces: self.ces,
            nps: self.nps,
            sentiment: self.sentiment,
        }
    }
}

/// A row of `identity_channels`: an identity key has events on a channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Row, Serialize, Deserialize)]
pub struct IdentityChannelRow {
    pub identity_key: String,
    pub channel: i8,
}

/// A row of `contacts`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct ContactRow {
    pub contact_id: String,
    pub channel: i8,
    pub topic: i8,
    pub started_at: u32,
    pub started_at_ms: i64,
    pub resolved: u8,
    pub handed_off: u8,
    pub abandoned: u8,
    pub csat: Option<u8>,
    pub ces: Option<u8>,
    pub nps: Option<u8>,
    pub first_response_ms: Option<i64>,
    pub handle_seconds: Option<u32>,
    pub events: u32,
    pub identity_key: String,
    /// The number of distinct events it was computed from.
    pub version: u64,
}

impl ContactRow {
    pub fn new(contact: &Contact) -> ContactRow {
        let events = u32::try_from(contact.events).unwrap_or(u32::MAX);
        ContactRow {
            contact_id: contact.contact_id.clone(),
            channel: contact.channel.code(),
            topic: contact.topic.code(),
            started_at: epoch_seconds(contact.started_at_ms.div_euclid(1000)),
            started_at_ms: contact.started_at_ms,
            resolved: u8::from(contact.resolved),
            handed_off: u8::from(contact.handed_off),
            abandoned: u8::from(contact.abandoned),
            csat: contact.csat,
            ces: contact.ces,
            nps: contact.nps,
            first_response_ms: contact.first_response_ms,
            handle_seconds: contact.handle_seconds,
            events,
            identity_key: contact
                .identity_key
                .as_ref()
                .map(|k| k.stored.clone())
                .unwrap_or_default(),
            version: u64::from(events),
        }
    }

    /// The contact this row holds, for journeys (its facts are not kept).
    pub fn contact(&self) -> Option<Contact> {
        Some(Contact {
            contact_id: self.contact_id.clone(),
            channel: Channel::from_code(self.channel)?,
            topic: Topic::from_code(self.topic)?,
            started_at_ms: self.started_at_ms,
            resolved: self.resolved != 0,
            handed_off: self.handed_off != 0,
            first_response_ms: self.first_response_ms,
            csat: self.csat,
            ces: self.ces,
            nps: self.nps,
            handle_seconds: self.handle_seconds,
            abandoned: self.abandoned != 0,
            identity_key: None,
            events: self.events as usize,
        })
    }
}

/// A row of `customer_state`: a customer's journeys and stats.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct CustomerStateRow {
    pub customer_id: String,
    pub customer_channels: Vec<String>,
    pub customer_contacts: u32,
    pub csat_range: Option<f64>,
    pub journey_ids: Vec<String>,
    pub journey_topics: Vec<String>,
    pub journey_started_at_ms: Vec<i64>,
    pub journey_contacts: Vec<u32>,
    pub journey_channel_counts: Vec<u8>,
    pub journey_channel_switches: Vec<u32>,
    pub journey_resolved: Vec<u8>,
    pub journey_one_contact: Vec<u8>,
    pub journey_contact_ids: Vec<Vec<String>>,
    pub journey_channels: Vec<Vec<String>>,
    pub version: u64,
    pub updated_at: u32,
}

impl CustomerStateRow {
    /// The state of `customer_id`: its stats and journeys, whose contacts'
    /// channels `channel_of` knows.
    pub fn new(
        customer_id: &str,
        stats: &CustomerStats,
        journeys: &[Journey],
        channel_of: &HashMap<&str, Channel>,
        version: u64,
        now_us: i64,
    ) -> CustomerStateRow {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let channels_of = |j: &Journey| {
            let mut channels: Vec<Channel> = j
                .contact_ids
                .iter()
                .filter_map(|id| channel_of.get(id.as_str()).copied())
                .collect();
            channels.sort_unstable();
            channels.dedup();
            channels.iter().map(|c| c.as_str().to_owned()).collect()
        };
        CustomerStateRow {
            customer_id: customer_id.to_owned(),
            customer_channels: stats
                .channels
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            customer_contacts: u32::try_from(stats.contacts).unwrap_or(u32::MAX),
            csat_range: stats.csat_range,
            journey_ids: journeys.iter().map(|j| j.journey_id.clone()).collect(),
            journey_topics: journeys
                .iter()
                .map(|j| j.topic.as_str().to_owned())
                .collect(),
            journey_started_at_ms: journeys.iter().map(|j| j.started_at_ms).collect(),
            journey_contacts: journeys
                .iter()
                .map(|j| count(j.contact_ids.len()))
                .collect(),
            journey_channel_counts: journeys
                .iter()
                .map(|j| u8::try_from(j.channel_count).unwrap_or(u8::MAX))
                .collect(),
            journey_channel_switches: journeys.iter().map(|j| count(j.channel_switches)).collect(),
            journey_resolved: journeys.iter().map(|j| u8::from(j.resolved)).collect(),
            journey_one_contact: journeys
                .iter()
                .map(|j| u8::from(j.one_contact_resolution))
                .collect(),
            journey_contact_ids: journeys.iter().map(|j| j.contact_ids.clone()).collect(),
            journey_channels: journeys.iter().map(channels_of).collect(),
            version,
            updated_at: epoch_seconds(now_us.div_euclid(1_000_000)),
        }
    }
}

/// A row of `channel_daily`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct ChannelDayRow {
    pub day: u16,
    pub channel: i8,
    pub contacts: u64,
    pub resolved_contacts: u64,
    pub frt_responses: u64,
    pub frt_sum_s: f64,
    pub frt_p50_s: Option<f64>,
    pub frt_p90_s: Option<f64>,
    pub calls: u64,
    pub handled_calls: u64,
    pub handle_sum_s: f64,
    pub abandoned_calls: u64,
    pub conversations: u64,
    pub handed_off: u64,
    pub csat_responses: u64,
    pub csat_top2: u64,
    pub nps_responses: u64,
    pub nps_promoters: u64,
    pub nps_detractors: u64,
    pub ces_responses: u64,
    pub ces_sum: f64,
    pub sentiment_responses: u64,
    pub sentiment_sum: f64,
    pub version: u64,
}

impl ChannelDayRow {
    pub fn new(day: u16, channel: Channel, m: &ChannelDay, version: u64) -> ChannelDayRow {
        ChannelDayRow {
            day,
            channel: channel.code(),
            contacts: m.contacts,
            resolved_contacts: m.resolved_contacts,
            frt_responses: m.frt_responses,
            frt_sum_s: m.frt_sum_s,
            frt_p50_s: m.frt_p50_s,
            frt_p90_s: m.frt_p90_s,
            calls: m.calls,
            handled_calls: m.handled_calls,
            handle_sum_s: m.handle_sum_s,
            abandoned_calls: m.abandoned_calls,
            conversations: m.conversations,
            handed_off: m.handed_off,
            csat_responses: m.csat_responses,
            csat_top2: m.csat_top2,
            nps_responses: m.nps_responses,
            nps_promoters: m.nps_promoters,
            nps_detractors: m.nps_detractors,
            ces_responses: m.ces_responses,
            ces_sum: m.ces_sum,
            sentiment_responses: m.sentiment_responses,
            sentiment_sum: m.sentiment_sum,
            version,
        }
    }
}

/// A row of `consistency_daily`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct ConsistencyDayRow {
    pub day: u16,
    pub journeys: u64,
    pub multichannel_journeys: u64,
    pub ocr_journeys: u64,
    pub repeat_journeys: u64,
    pub channel_switches: u64,
    pub csat_gap_pp: Option<f64>,
    pub resolution_gap_pp: Option<f64>,
    pub version: u64,
}

impl ConsistencyDayRow {
    pub fn new(day: u16, m: &ConsistencyDay, version: u64) -> ConsistencyDayRow {
        ConsistencyDayRow {
            day,
            journeys: m.journeys,
            multichannel_journeys: m.multichannel_journeys,
            ocr_journeys: m.ocr_journeys,
            repeat_journeys: m.repeat_journeys,
            channel_switches: m.channel_switches,
            csat_gap_pp: m.csat_gap_pp,
            resolution_gap_pp: m.resolution_gap_pp,
            version,
        }
    }
}

/// The UTC day (days since the Unix epoch) of a time in milliseconds.
pub fn day_of_ms(ms: i64) -> u16 {
    u16::try_from(ms.div_euclid(86_400_000)).unwrap_or(if ms < 0 { 0 } else { u16::MAX })
}

/// An SQL string literal of `value`, escaped for ClickHouse and for the
/// client's `?` placeholders.
fn literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '?' => out.push_str("??"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `values` as array literals of quoted strings, each of at most
/// [`LIST_VALUES`] values and under [`LIST_BYTES`] (unless one value alone
/// is longer).
fn array_literals<S: AsRef<str>>(values: &[S]) -> Vec<String> {
    let mut lists = Vec::new();
    let mut list = String::from("[");
    let mut listed = 0;
    for value in values {
        let quoted = literal(value.as_ref());
        if listed > 0 && (listed == LIST_VALUES || list.len() + quoted.len() + 2 > LIST_BYTES) {
            list.push(']');
            lists.push(std::mem::replace(&mut list, String::from("[")));
            listed = 0;
        }
        listed += 1;
        if list.len() > 1 {
            list.push(',');
        }
        list.push_str(&quoted);
    }
    if list.len() > 1 {
        list.push(']');
        lists.push(list);
    }
    lists
}

/// Runs `sql` once per array literal of `values` and gathers the rows. In
/// `sql`, `{values}` stands for a subquery of the strings, for `x IN
/// {values}`, and `{dates}` for the same converted to dates, for `day IN
/// {dates}` (a `Date` `IN` a subquery of strings matches nothing).
///
/// ClickHouse 18.16 parses an array literal three to four times faster than
/// an `IN (...)` list of the same strings (0.04 s against 0.11-0.16 s for
/// 25,000 customer ids).
///
/// A read through `FINAL` filters in `PREWHERE` when the filter is on a
/// sorting-key column: every version of a row agrees on those, so dropping
/// rows before `FINAL` merges them keeps exactly the newest versions, and
/// 18.16 does not move such a `WHERE` itself (25,000 contacts of 476,000
/// facts: 0.16 s against 0.26-0.29 s). The larger reads skip `FINAL`
/// altogether and keep the newest versions themselves ([`keep_newest`]).
async fn fetch_in<T, S>(warehouse: &Warehouse, sql: &str, values: &[S]) -> Result<Vec<T>, SinkError>
where
    T: clickhouse::RowOwned + clickhouse::RowRead,
    S: AsRef<str>,
{
    let mut rows = Vec::new();
    for array in array_literals(values) {
        let query = sql
            .replace("{values}", &format!("(SELECT arrayJoin({array}))"))
            .replace("{dates}", &format!("(SELECT toDate(arrayJoin({array})))"));
        let fetched = warehouse.fetch_all::<T>(&query).await?;
        // Most reads take one list: keep its rows rather than copy them.
        if rows.is_empty() {
            rows = fetched;
        } else {
            rows.extend(fetched);
        }
    }
    Ok(rows)
}

/// The facts of `contact_ids`, every distinct event once, in its newest
/// version.
///
/// Read without `FINAL` ([`keep_newest`]; versions that tie are the same
/// event written twice in one batch). This is the largest derive read.
pub async fn contact_facts(
    warehouse: &Warehouse,
    contact_ids: &[&str],
) -> Result<Vec<ContactFactRow>, SinkError> {
    let mut rows: Vec<ContactFactRow> = fetch_in(
        warehouse,
        "SELECT ?fields FROM {database}.contact_facts PREWHERE contact_id IN {values}",
        contact_ids,
    )
    .await?;
    keep_newest(
        &mut rows,
        |a, b| (&a.contact_id, &a.event_id).cmp(&(&b.contact_id, &b.event_id)),
        |r| r.version,
    );
    Ok(rows)
}

/// Keeps, of the rows that `row` orders as one, the one of the highest
/// `version`, which is what `FINAL` keeps of a `ReplacingMergeTree(version)`
/// (of versions that tie, `FINAL` keeps one; so does this).
///
/// The reads of every version that this serves filter on what identifies a
/// row, or on a subquery of the identities whose any version matches, so
/// they hold every version of the rows they need. 18.16 merges a `FINAL`
/// read in one thread, and merges the whole table when the filter is not on
/// the sorting key.
fn keep_newest<T>(
    rows: &mut Vec<T>,
    row: impl Fn(&T, &T) -> std::cmp::Ordering,
    version: impl Fn(&T) -> u64,
) {
    rows.sort_unstable_by(|a, b| row(a, b).then_with(|| version(b).cmp(&version(a))));
    rows.dedup_by(|later, newest| row(later, newest).is_eq());
}

#[derive(Debug, Row, Deserialize)]
struct AssignmentRow {
    identifier: String,
    customer_id: String,
}

/// The customer each of `identifiers` (stored forms) belongs to now, as
/// `identity_assignments` says; identifiers not yet assigned are left out.
pub async fn customers_of(
    warehouse: &Warehouse,
    identifiers: &[&str],
) -> Result<HashMap<String, String>, SinkError> {
    let rows: Vec<AssignmentRow> = fetch_in(
        warehouse,
        "SELECT identifier, customer_id FROM {database}.identity_assignments FINAL \
         PREWHERE identifier IN {values}",
        identifiers,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.identifier, r.customer_id))
        .collect())
}

/// How a derive step's reads share ClickHouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// One after another, so that batch writes running beside them wait for
    /// one read at most: the timeline stays fresh.
    InTurn,
    /// All at once, when nothing else runs: ClickHouse answers one while
    /// Touchline decodes another.
    AtOnce,
}

/// What a read of customers' or days' inputs ([`customer_inputs`],
/// [`day_inputs`]) scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The listed customers' or days' rows: the cost grows with the list
    /// (18.16 parses every listed value, and most reads find the rows
    /// through a subquery: the customers' identifiers, the contacts that
    /// started on the days).
    Listed,
    /// Whole tables, the rows of customers or days not listed dropped as
    /// they are read: the cost grows with the tables.
    Whole,
}

/// [`Scope::of_customers`] reads whole tables for at least one customer per
/// this many identifiers stored.
const IDENTIFIERS_PER_CUSTOMER_READ_WHOLE: u64 = 4;

/// [`Scope::of_days`] reads whole tables for at least one day per this many
/// days stored.
const STORED_DAYS_PER_DAY_READ_WHOLE: u64 = 2;

impl Scope {
    /// The cheaper scope for reading `customers` customers: whole tables
    /// once they number at least a quarter of the identifiers in
    /// `identity_assignments` (versions included), as after a backlog,
    /// when a round recomputes nearly every customer. On the benchmark's
    /// tables (411,557 identifiers, 190,316 customers) the five reads took
    /// 3.4 s listing 213,841 customers against 0.5 s whole; listing 30,000,
    /// 0.47 s, and Touchline decodes less.
    pub async fn of_customers(warehouse: &Warehouse, customers: usize) -> Result<Scope, SinkError> {
        let identifiers = warehouse
            .count("SELECT count() AS n FROM {database}.identity_assignments")
            .await?;
        Ok(Scope::whole_from(
            customers,
            IDENTIFIERS_PER_CUSTOMER_READ_WHOLE,
            identifiers,
        ))
    }

    /// The cheaper scope for reading `days` days: whole tables once they
    /// number at least half of the days in `consistency_daily`, as after a
    /// backlog, when a round recomputes every day of the history, and not
    /// when a live pipeline recomputes today. On the benchmark's tables
    /// (306,016 contacts over 32 days) the contacts read took 0.17-0.19 s
    /// listing every day, 0.13-0.14 s listing 16, 0.08-0.11 s listing 8,
    /// and 0.06-0.07 s whole; the scores and journeys reads cost the same
    /// either way for every day.
    pub async fn of_days(warehouse: &Warehouse, days: usize) -> Result<Scope, SinkError> {
        let stored = warehouse
            .count("SELECT uniqExact(day) AS n FROM {database}.consistency_daily")
            .await?;
        Ok(Scope::whole_from(
            days,
            STORED_DAYS_PER_DAY_READ_WHOLE,
            stored,
        ))
    }

    /// Whole once `items`, counted `weight` times, reach `stored`.
    fn whole_from(items: usize, weight: u64, stored: u64) -> Scope {
        let items = u64::try_from(items).unwrap_or(u64::MAX);
        if items.saturating_mul(weight) >= stored {
            Scope::Whole
        } else {
            Scope::Listed
        }
    }
}

/// What the pipeline recomputes a customer from.
#[derive(Debug, Default)]
pub struct CustomerInputs {
    pub contacts: Vec<ContactRow>,
    pub channels: Vec<Channel>,
    pub csat: Vec<(Channel, u8)>,
    /// Start days of the journeys stored for it now.
    pub stored_journey_days: Vec<u16>,
}

#[derive(Debug, Row, Deserialize)]
struct ChannelOfKeyRow {
    identity_key: String,
    channel: i8,
}

#[derive(Debug, Row, Deserialize)]
struct StoredJourneysRow {
    customer_id: String,
    journey_started_at_ms: Vec<i64>,
}

/// Every identifier that has been assigned to one of the customers listed
/// as `{values}`, in any version: a superset of their identifiers now, read
/// without `FINAL`, to stand for `{keys}`.
const KEYS_OF: &str = "(SELECT identifier FROM {database}.identity_assignments \
                       WHERE customer_id IN {values})";

#[derive(Debug, Row, Deserialize)]
struct VersionedAssignmentRow {
    identifier: String,
    customer_id: String,
    version: u64,
}

/// Everything the customers' state is computed from, one [`CustomerInputs`]
/// for each of `customers` (each listed once), in their order: their
/// identifiers now, then what carries those as its identity key. `scope`
/// says whether the reads find the customers' rows or read whole tables
/// (either gives the same answer).
///
/// The reads by identity key list the customers, not their keys, and let
/// ClickHouse find the keys ([`KEYS_OF`]): on 18.16 a listed value costs
/// about 6 µs to parse, and a customer has several keys. No read by key
/// goes through `FINAL`: each reads every version of the rows that any version
/// puts in the customers' reach, keeps the newest ([`keep_newest`]), and
/// keeps those whose newest version is the customers' (identity keys are
/// looked up in the assignments read). A key assigned while the reads run
/// (`reads` says whether one after another or at once) is either left out
/// (not in the assignments' answer) or, if it joined, brings its own mark.
pub async fn customer_inputs(
    warehouse: &Warehouse,
    customers: &[&str],
    reads: Reads,
    scope: Scope,
) -> Result<Vec<CustomerInputs>, SinkError> {
    let position: HashMap<&str, usize> = customers
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect();
    // Each read listed, and whole. A whole read of the scores still reads
    // only events scored with a CSAT, in every version.
    let reads_sql = [
        (
            "SELECT identifier, customer_id, version FROM {database}.identity_assignments \
             PREWHERE identifier IN {keys}",
            "SELECT identifier, customer_id, version FROM {database}.identity_assignments",
        ),
        (
            "SELECT ?fields FROM {database}.contacts PREWHERE contact_id IN \
             (SELECT contact_id FROM {database}.contacts WHERE identity_key IN {keys})",
            "SELECT ?fields FROM {database}.contacts",
        ),
        (
            "SELECT identity_key, channel FROM {database}.identity_channels \
             PREWHERE identity_key IN {keys}",
            "SELECT identity_key, channel FROM {database}.identity_channels",
        ),
        (
            "SELECT ?fields FROM {database}.scores PREWHERE event_id IN \
             (SELECT event_id FROM {database}.scores \
              WHERE identity_key IN {keys} AND csat IS NOT NULL)",
            "SELECT ?fields FROM {database}.scores PREWHERE event_id IN \
             (SELECT event_id FROM {database}.scores WHERE csat IS NOT NULL)",
        ),
        (
            "SELECT customer_id, journey_started_at_ms FROM {database}.customer_state FINAL \
             PREWHERE customer_id IN {values}",
            "SELECT customer_id, journey_started_at_ms FROM {database}.customer_state FINAL",
        ),
    ]
    .map(|(listed, whole)| match scope {
        Scope::Listed => listed.replace("{keys}", KEYS_OF),
        Scope::Whole => whole.to_owned(),
    });
    let [assignments_sql, contacts_sql, channels_sql, scores_sql, stored_sql] = &reads_sql;
    // The five reads do not depend on one another.
    let assignments =
        read_scoped::<VersionedAssignmentRow, _>(warehouse, assignments_sql, customers, scope);
    let contacts = read_scoped::<ContactRow, _>(warehouse, contacts_sql, customers, scope);
    let channels = read_scoped::<ChannelOfKeyRow, _>(warehouse, channels_sql, customers, scope);
    let scores = read_scoped::<ScoreRow, _>(warehouse, scores_sql, customers, scope);
    let stored = read_scoped::<StoredJourneysRow, _>(warehouse, stored_sql, customers, scope);
    let (mut assignments, mut contacts, channels, mut scores, stored) = match reads {
        Reads::AtOnce => tokio::try_join!(assignments, contacts, channels, scores, stored)?,
        Reads::InTurn => (
            assignments.await?,
            contacts.await?,
            channels.await?,
            scores.await?,
            stored.await?,
        ),
    };
    keep_newest(
        &mut assignments,
        |a, b| a.identifier.cmp(&b.identifier),
        |r| r.version,
    );
    // Each identifier's customer, as its position in `customers`.
    let owner: HashMap<&str, usize> = assignments
        .iter()
        .filter_map(|r| {
            Some((
                r.identifier.as_str(),
                *position.get(r.customer_id.as_str())?,
            ))
        })
        .collect();
    let mut inputs: Vec<CustomerInputs> = Vec::new();
    inputs.resize_with(customers.len(), CustomerInputs::default);
    keep_newest(&mut contacts, contact_row, |r| r.version);
    for row in contacts {
        if let Some(&customer) = owner.get(row.identity_key.as_str()) {
            inputs[customer].contacts.push(row);
        }
    }
    // Rows of `identity_channels` have no versions; copies of one are
    // harmless, as a customer's channels are a set.
    for row in channels {
        if let (Some(&customer), Some(channel)) = (
            owner.get(row.identity_key.as_str()),
            Channel::from_code(row.channel),
        ) {
            inputs[customer].channels.push(channel);
        }
    }
    keep_newest(&mut scores, score_row, |r| r.version);
    for row in scores {
        if let (Some(&customer), Some(channel), Some(csat)) = (
            owner.get(row.identity_key.as_str()),
            Channel::from_code(row.channel),
            row.csat,
        ) {
            inputs[customer].csat.push((channel, csat));
        }
    }
    for row in stored {
        if let Some(&customer) = position.get(row.customer_id.as_str()) {
            inputs[customer].stored_journey_days = row
                .journey_started_at_ms
                .into_iter()
                .map(day_of_ms)
                .collect();
        }
    }
    Ok(inputs)
}

/// Runs one read of [`customer_inputs`] or [`day_inputs`]: listed, once
/// per array literal of `values`; whole, once.
async fn read_scoped<T, S>(
    warehouse: &Warehouse,
    sql: &str,
    values: &[S],
    scope: Scope,
) -> Result<Vec<T>, SinkError>
where
    T: clickhouse::RowOwned + clickhouse::RowRead,
    S: AsRef<str>,
{
    match scope {
        Scope::Listed => fetch_in(warehouse, sql, values).await,
        Scope::Whole => warehouse.fetch_all(sql).await,
    }
}

/// What identifies a row of `contacts`: its sorting key.
fn contact_row(a: &ContactRow, b: &ContactRow) -> std::cmp::Ordering {
    a.contact_id.cmp(&b.contact_id)
}

/// What identifies a row of `scores`: its sorting key.
fn score_row(a: &ScoreRow, b: &ScoreRow) -> std::cmp::Ordering {
    (a.day, a.channel, &a.event_id).cmp(&(b.day, b.channel, &b.event_id))
}

/// What the pipeline recomputes a day from.
#[derive(Debug, Default)]
pub struct DayInputs {
    /// Contacts that started that day.
    pub contacts: Vec<ContactRow>,
    /// Scored events of that day.
    pub scores: Vec<ScoreRow>,
    /// Journeys that start that day.
    pub journeys: Vec<JourneyDayRow>,
}

/// What a journey adds to the day it started.
#[derive(Debug, Row, Deserialize)]
pub struct JourneyDayRow {
    pub started_at_ms: i64,
    pub contacts: u32,
    pub channel_count: u8,
    pub channel_switches: u32,
    pub one_contact_resolution: u8,
}

/// Everything the days' metrics are computed from, by day. Contacts and
/// scores are read without `FINAL` ([`keep_newest`]). A late event can move
/// a contact's start to another day, so contacts are read in every version
/// of those that started on one of the days in any version, and kept by the
/// day of their newest; scores never move. `reads` says whether the three
/// reads run one after another or at once; `scope`, whether they find the
/// days' rows or read whole tables (either gives the same answer).
pub async fn day_inputs(
    warehouse: &Warehouse,
    days: &[u16],
    reads: Reads,
    scope: Scope,
) -> Result<HashMap<u16, DayInputs>, SinkError> {
    let dates: Vec<String> = days.iter().map(|d| date_literal(*d)).collect();
    let wanted: HashSet<u16> = days.iter().copied().collect();
    // Each read listed, and whole.
    let reads_sql = [
        (
            "SELECT ?fields FROM {database}.contacts PREWHERE contact_id IN \
             (SELECT contact_id FROM {database}.contacts WHERE toDate(started_at) IN {dates})",
            "SELECT ?fields FROM {database}.contacts",
        ),
        (
            "SELECT ?fields FROM {database}.scores PREWHERE day IN {dates}",
            "SELECT ?fields FROM {database}.scores",
        ),
        (
            "SELECT ?fields FROM {database}.v_journeys WHERE toDate(started_at) IN {dates}",
            "SELECT ?fields FROM {database}.v_journeys",
        ),
    ]
    .map(|(listed, whole)| match scope {
        Scope::Listed => listed,
        Scope::Whole => whole,
    });
    let [contacts_sql, scores_sql, journeys_sql] = reads_sql;
    let contacts = read_scoped::<ContactRow, _>(warehouse, contacts_sql, &dates, scope);
    let scores = read_scoped::<ScoreRow, _>(warehouse, scores_sql, &dates, scope);
    let journeys = read_scoped::<JourneyDayRow, _>(warehouse, journeys_sql, &dates, scope);
    let (mut contacts, mut scores, journeys) = match reads {
        Reads::AtOnce => tokio::try_join!(contacts, scores, journeys)?,
        Reads::InTurn => (contacts.await?, scores.await?, journeys.await?),
    };
    let mut inputs: HashMap<u16, DayInputs> = HashMap::new();
    keep_newest(&mut contacts, contact_row, |r| r.version);
    for row in contacts {
        let day = day_of_ms(row.started_at_ms);
        if wanted.contains(&day) {
            inputs.entry(day).or_default().contacts.push(row);
        }
    }
    keep_newest(&mut scores, score_row, |r| r.version);
    for row in scores {
        if wanted.contains(&row.day) {
            inputs.entry(row.day).or_default().scores.push(row);
        }
    }
    for row in journeys {
        let day = day_of_ms(row.started_at_ms);
        if wanted.contains(&day) {
            inputs.entry(day).or_default().journeys.push(row);
        }
    }
    Ok(inputs)
}

/// `YYYY-MM-DD` of a day since the Unix epoch, which ClickHouse compares
/// with a `Date`.
fn date_literal(day: u16) -> String {
    let (y, m, d) = civil_from_days(i64::from(day));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Proleptic Gregorian date of a day since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_of_days() {
        let cases = [
            (0, "1970-01-01"),
            (59, "1970-03-01"),
            (10_957, "2000-01-01"),
            (11_016, "2000-02-29"),
            (20_779, "2026-11-22"),
        ];
        for (day, text) in cases {
            assert_eq!(date_literal(day), text, "{day}");
        }
        assert_eq!(day_of_ms(20_779 * 86_400_000 + 1), 20_779);
        assert_eq!(day_of_ms(-1), 0);
    }

    #[test]
    fn literals_escape_quotes_backslashes_and_placeholders() {
        assert_eq!(literal("a'b\\c?d"), r"'a\'b\\c??d'");
    }

    #[test]
    fn array_literals_hold_every_value_once_and_stay_under_the_limit() {
        assert!(array_literals::<&str>(&[]).is_empty());
        assert_eq!(
            array_literals(&["a", "b'c"]),
            vec![r"['a','b\'c']".to_owned()]
        );
        let values: Vec<String> = (0..400_000).map(|i| format!("contact-{i:020}")).collect();
        let short: Vec<String> = (0..600_000).map(|i| format!("{i}")).collect();
        assert_eq!(array_literals(&short).len(), 3, "by count");
        let lists = array_literals(&values);
        assert!(
            lists.len() > 1,
            "{} bytes of values fit one list",
            values.len() * 31
        );
        let mut seen = 0;
        for list in &lists {
            assert!(list.len() <= LIST_BYTES, "{}", list.len());
            assert!(list.matches(',').count() < LIST_VALUES);
            let inner = list.strip_prefix('[').and_then(|l| l.strip_suffix(']'));
            for (i, value) in inner.expect("bracketed").split(',').enumerate() {
                assert_eq!(value, format!("'{}'", values[seen]), "list item {i}");
                seen += 1;
            }
        }
        assert_eq!(seen, values.len());
    }
}
