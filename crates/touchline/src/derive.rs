//! Contacts, journeys and the daily metrics (`SPEC.md` §4-6), kept exact as
//! events arrive late, twice or out of order and as identities merge and
//! split (design: `docs/design/20261122_contacts_journeys.md`).
//!
//! Everything derived is recomputed whole from what ClickHouse holds, never
//! patched, so recomputing twice changes nothing:
//! - each event's [`ContactFactRow`], score and channel are written with its
//!   timeline row; once they are written, the contacts it touched are
//!   recomputed from all their facts (a contact's facts only grow, so its
//!   row is versioned by how many there are);
//! - customers (journeys, per-customer stats) and days (per-channel metrics,
//!   consistency) span partitions, so each has one owner at a time: the
//!   instance assigned the partition of its *mark* in the compacted mark
//!   topic, keyed `customer:<id>` or `day:<n>`. Whatever may change a
//!   customer or a day produces its mark after the change is in ClickHouse;
//!   the owner recomputes it from ClickHouse and versions the rows by the
//!   mark's offset, which only grows for a key.
//!
//! The steps run in *rounds*, beside the next batches' writes: a round takes
//! the work of every batch whose rows ClickHouse confirmed since the last
//! round began, so one round's reads (whose cost grows with the tables, not
//! with the batch) serve as many batches as arrived meanwhile. A round runs
//! its steps in the order their changes flow: the contacts, then the
//! customers, then the days. Each step's changes are announced by marks
//! before the next step starts, and the next step also takes those of the
//! round's own marks that land in partitions this instance owns, at their
//! offsets: so one round carries a new event through to the daily metrics,
//! and the instance skips those marks when it reads them back (a mark read
//! at or before such an offset announces nothing the recompute missed).
//! While source messages keep coming, a step runs its reads one after
//! another, so that each batch's write waits for one read at most; once
//! they stopped (as after a backlog, when batches of derive marks have
//! nothing to write) the round has ClickHouse to itself and runs each
//! step's reads at once, so that ClickHouse answers while Touchline
//! computes. A batch's offsets (its marks' included) are stored only after
//! its rows are written, the round that covered it is done and the marks
//! that round produced are acknowledged, so a crash repeats steps, which is
//! harmless, and never skips one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail};
// foldhash (seeded per process), not SipHash: these sets take every event's
// identity key and contact id.
use hashbrown::{HashMap, HashSet};
use rdkafka::ClientConfig;
use tokio::sync::watch;
use touchline_clickhouse::derived::{
    self, day_of_ms, ChannelDayRow, ConsistencyDayRow, ContactFactRow, ContactRow,
    CustomerStateRow, IdentityChannelRow, Reads, Scope, ScoreRow,
};
use touchline_clickhouse::{SinkError, Warehouse};
use touchline_model::contact::{self, ContactFact, ContactKey};
use touchline_model::identity::Identifier;
use touchline_model::metrics::{
    ChannelDay, ConsistencyDay, ContactOutcome, CustomerStats, JourneyOutcome,
};
use touchline_model::{Channel, SourceRecord, UnifiedEvent};

use crate::identity::{ensure_topic, lock};
use crate::metrics::Metrics;
use crate::pipeline::{now_micros, retry};
use crate::produce::BatchProducer;

/// The mark topic's name, after the topic prefix.
pub const MARK_TOPIC: &str = "touchline.derive.marks";
/// Partitions of the mark topic: how many instances can share the
/// customers and days. Fixed once created: a mark's partition must not
/// change, or its offsets would stop growing.
pub const MARK_PARTITIONS: i32 = 4;

/// Something derived that must be recomputed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mark {
    /// A customer's journeys and stats.
    Customer(String),
    /// A UTC day's per-channel metrics and consistency.
    Day(u16),
}

impl Mark {
    /// The Kafka key (and payload) of the mark.
    pub fn key(&self) -> String {
        match self {
            Mark::Customer(id) => format!("customer:{id}"),
            Mark::Day(day) => format!("day:{day}"),
        }
    }

    /// The mark of a Kafka key; `None` for anything else.
    pub fn parse(key: &[u8]) -> Option<Mark> {
        let key = std::str::from_utf8(key).ok()?;
        if let Some(id) = key.strip_prefix("customer:") {
            return Some(Mark::Customer(id.to_owned()));
        }
        key.strip_prefix("day:")?.parse().ok().map(Mark::Day)
    }
}

/// What a batch adds to the derived tables, gathered as it is read: the rows
/// it writes with its timeline rows, and the derive work they call for.
#[derive(Debug, Default)]
pub struct DerivedBatch {
    pub facts: Vec<ContactFactRow>,
    pub scores: Vec<ScoreRow>,
    pub channels: Vec<IdentityChannelRow>,
    seen_channels: HashSet<(String, i8)>,
    /// What to recompute once the rows above are written.
    pub work: DeriveWork,
}

/// What must be recomputed: gathered from batches whose rows are written,
/// and merged across batches so that one derive round serves many.
#[derive(Debug, Default)]
pub struct DeriveWork {
    /// Contacts that gained a fact.
    contact_ids: HashSet<String>,
    /// Identity keys of the events: their customers' channels or scores may
    /// have changed.
    keys: HashSet<String>,
    /// Days of scored events.
    score_days: BTreeSet<u16>,
    /// Marks read, each with its newest offset.
    marks: HashMap<Mark, u64>,
}

impl DerivedBatch {
    /// Adds one event with its identifiers (anchor order) and the stored
    /// form of its identity key, ingested at `version`.
    pub fn add_event(
        &mut self,
        record: &SourceRecord,
        event: &UnifiedEvent,
        ids: &[Identifier],
        identity_key: &str,
        version: u64,
    ) {
        let key = ids.first().map(|id| ContactKey {
            kind: id.kind(),
            stored: identity_key.to_owned(),
        });
        if let Some(fact) = contact::contact_fact(record, event, key) {
            if !self.work.contact_ids.contains(&fact.contact_id) {
                self.work.contact_ids.insert(fact.contact_id.clone());
            }
            self.facts.push(ContactFactRow::new(&fact, version));
        }
        if let Some(score) = ScoreRow::of(event, identity_key, version) {
            self.work.score_days.insert(score.day);
            self.scores.push(score);
        }
        if !identity_key.is_empty() {
            let channel = event.channel.code();
            if self
                .seen_channels
                .insert((identity_key.to_owned(), channel))
            {
                self.channels.push(IdentityChannelRow {
                    identity_key: identity_key.to_owned(),
                    channel,
                });
            }
            if !self.work.keys.contains(identity_key) {
                self.work.keys.insert(identity_key.to_owned());
            }
        }
    }

    /// Adds a message of the mark topic; anything unreadable is skipped.
    pub fn add_mark(&mut self, key: &[u8], offset: i64) {
        match Mark::parse(key) {
            Some(mark) => self
                .work
                .note_mark(mark, u64::try_from(offset).unwrap_or_default()),
            None => {
                tracing::warn!(key = %String::from_utf8_lossy(key), "skipping an unreadable derive mark")
            }
        }
    }
}

impl DeriveWork {
    /// Whether there is anything to recompute.
    pub fn is_empty(&self) -> bool {
        self.contact_ids.is_empty()
            && self.keys.is_empty()
            && self.score_days.is_empty()
            && self.marks.is_empty()
    }

    /// Adds `other`'s work to this one (a mark keeps its newest offset).
    pub fn merge(&mut self, other: DeriveWork) {
        self.contact_ids.extend(other.contact_ids);
        self.keys.extend(other.keys);
        self.score_days.extend(other.score_days);
        for (mark, offset) in other.marks {
            self.note_mark(mark, offset);
        }
    }

    /// Notes `mark` read at `offset`, keeping its newest offset.
    fn note_mark(&mut self, mark: Mark, offset: u64) {
        let newest = self.marks.entry(mark).or_default();
        *newest = (*newest).max(offset);
    }
}

/// What a derive round did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Derived {
    pub contacts: usize,
    pub customers: usize,
    pub days: usize,
    pub marks_produced: usize,
    /// Of the customers and days, those of the round's own marks.
    pub early: usize,
    /// Marks read that an earlier round had recomputed already.
    pub skipped: usize,
}

/// The derive steps of one instance: ClickHouse to read and write, and the
/// mark topic to hand work to each customer's and day's owner.
#[derive(Clone)]
pub struct Deriver {
    marks: MarkProducer,
    warehouse: Warehouse,
    metrics: Metrics,
    /// Marks this instance produced and recomputed in the same round.
    early: Arc<Mutex<EarlyMarks>>,
}

/// Marks this instance produced and recomputed in the same round, each with
/// its partition and offset, until it reads them back: a mark read at or
/// before that offset announces nothing the recompute missed.
#[derive(Debug, Default)]
struct EarlyMarks(HashMap<Mark, (i32, u64)>);

/// Customers and days to recompute, each at the offset of its newest mark.
#[derive(Debug, Default, PartialEq)]
struct ToDerive {
    customers: BTreeMap<String, u64>,
    days: BTreeMap<u16, u64>,
}

impl ToDerive {
    /// Adds `mark` at `offset`, which replaces any earlier offset of it.
    fn add(&mut self, mark: &Mark, offset: u64) {
        match mark {
            Mark::Customer(id) => self.customers.insert(id.clone(), offset),
            Mark::Day(day) => self.days.insert(*day, offset),
        };
    }
}

impl EarlyMarks {
    /// The customers and days of `marks` (each read at its newest offset),
    /// but for those recomputed early at that offset or a later one; and how
    /// many marks that skipped. Forgets a mark once it is read back (or a
    /// later one is), and every mark of a partition no longer `owned`.
    fn pending(&mut self, marks: &HashMap<Mark, u64>, owned: &BTreeSet<i32>) -> (ToDerive, usize) {
        self.0.retain(|_, (partition, _)| owned.contains(partition));
        let (mut pending, mut skipped) = (ToDerive::default(), 0);
        for (mark, &offset) in marks {
            if let Some(&(_, recomputed)) = self.0.get(mark) {
                if offset >= recomputed {
                    self.0.remove(mark);
                }
                if offset <= recomputed {
                    skipped += 1;
                    continue;
                }
            }
            pending.add(mark, offset);
        }
        (pending, skipped)
    }

    /// Notes marks recomputed in the round that produced them.
    fn record(&mut self, early: Vec<(Mark, i32, u64)>) {
        for (mark, partition, offset) in early {
            self.0.insert(mark, (partition, offset));
        }
    }
}

/// Produces marks to the mark topic.
#[derive(Clone)]
pub struct MarkProducer {
    topic: String,
    producer: BatchProducer,
}

impl MarkProducer {
    /// Creates the mark topic unless it exists, and the producer.
    pub async fn new(client: &ClientConfig, topic_prefix: &str) -> anyhow::Result<MarkProducer> {
        let topic = format!("{topic_prefix}{MARK_TOPIC}");
        ensure_topic(client, &topic, MARK_PARTITIONS).await?;
        let producer = BatchProducer::new(client, "derive-mark")?;
        Ok(MarkProducer { topic, producer })
    }

    /// The mark topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Produces `marks` and waits until the broker has them all; returns
    /// each mark with the partition and offset it landed at (leaving out
    /// any whose report gave no offset).
    pub async fn publish(&self, marks: &BTreeSet<Mark>) -> anyhow::Result<Vec<(Mark, i32, u64)>> {
        let keys: Vec<String> = marks.iter().map(Mark::key).collect();
        let placements = self
            .producer
            .send_keys(&self.topic, None, &keys)
            .await
            .map_err(|error| anyhow!("cannot produce derive marks to {}: {error}", self.topic))?;
        Ok(marks
            .iter()
            .zip(placements)
            .filter_map(|(mark, (partition, offset))| {
                Some((mark.clone(), partition, u64::try_from(offset).ok()?))
            })
            .collect())
    }
}

impl Deriver {
    pub fn new(marks: MarkProducer, warehouse: Warehouse, metrics: Metrics) -> Deriver {
        Deriver {
            marks,
            warehouse,
            metrics,
            early: Arc::default(),
        }
    }

    /// The mark topic's name.
    pub fn topic(&self) -> &str {
        self.marks.topic()
    }

    /// Runs a derive round over the work of batches whose facts, scores and
    /// channels are written: recomputes the contacts they touched, then the
    /// customers, then the days, each step after the marks announcing the
    /// previous one's changes are acknowledged. A step takes the marks read
    /// and those of the round's own marks whose partitions `owned` (this
    /// instance's share of the mark topic) holds, so that one round carries a
    /// change through to the daily metrics. Waits out ClickHouse or the
    /// broker being unavailable; `Ok(None)` when shutdown came first.
    ///
    /// With [`Reads::AtOnce`] each step's reads run at once; with
    /// [`Reads::InTurn`] one after another.
    pub async fn run(
        &self,
        work: &DeriveWork,
        reads: Reads,
        owned: &BTreeSet<i32>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<Option<Derived>> {
        let (mut pending, skipped) = lock(&self.early).pending(&work.marks, owned);
        let mut derived = Derived {
            skipped,
            ..Derived::default()
        };
        let mut early = Vec::new();

        let Some((touched, owners)) = self.touch(work, shutdown.clone()).await? else {
            return Ok(None);
        };
        derived.contacts = touched.contacts;
        let mut produce: BTreeSet<Mark> = work.score_days.iter().map(|d| Mark::Day(*d)).collect();
        produce.extend(touched.days.into_iter().map(Mark::Day));
        produce.extend(owners.into_values().map(Mark::Customer));
        let Some(placed) = self.publish(&produce, &mut derived, shutdown).await? else {
            return Ok(None);
        };
        take_owned(placed, owned, &mut pending, &mut early);

        let customers: Vec<(&str, u64)> = pending
            .customers
            .iter()
            .map(|(id, version)| (id.as_str(), *version))
            .collect();
        derived.customers = customers.len();
        if !customers.is_empty() {
            let Some(customer_days) = self
                .step(shutdown, || self.customers(&customers, reads))
                .await?
            else {
                return Ok(None);
            };
            let produce = customer_days.into_iter().map(Mark::Day).collect();
            let Some(placed) = self.publish(&produce, &mut derived, shutdown).await? else {
                return Ok(None);
            };
            take_owned(placed, owned, &mut pending, &mut early);
        }

        let days: Vec<(u16, u64)> = pending.days.into_iter().collect();
        derived.days = days.len();
        if !days.is_empty()
            && self
                .step(shutdown, || self.days(&days, reads))
                .await?
                .is_none()
        {
            return Ok(None);
        }
        // Only now, with every step written: a round cut short leaves its
        // marks to be read and recomputed.
        derived.early = early.len();
        lock(&self.early).record(early);
        Ok(Some(derived))
    }

    /// Publishes `marks`, if any, counting them in `derived`, waiting out
    /// the broker being unavailable; `Ok(None)` when shutdown came first.
    async fn publish(
        &self,
        marks: &BTreeSet<Mark>,
        derived: &mut Derived,
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<Option<Vec<(Mark, i32, u64)>>> {
        if marks.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let publish = || self.marks.publish(marks);
        let Some(placed) = retry("kafka", &self.metrics, shutdown, publish, |_| true).await else {
            return Ok(None);
        };
        derived.marks_produced += marks.len();
        placed.map(Some)
    }

    /// Recomputes the work's contacts, then finds the customers of the
    /// work's identity keys and of the touched contacts' keys.
    async fn touch(
        &self,
        work: &DeriveWork,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Option<(TouchedContacts, std::collections::HashMap<String, String>)>> {
        let contact_ids: Vec<&str> = work.contact_ids.iter().map(String::as_str).collect();
        let mut touched = TouchedContacts::default();
        if !contact_ids.is_empty() {
            let Some(found) = self
                .step(&mut shutdown, || self.contacts(&contact_ids))
                .await?
            else {
                return Ok(None);
            };
            touched = found;
        }
        // The work's keys and those of the touched contacts' facts, each once.
        let keys: Vec<&str> = work
            .keys
            .iter()
            .chain(touched.keys.difference(&work.keys))
            .map(String::as_str)
            .collect();
        if keys.is_empty() {
            return Ok(Some((touched, Default::default())));
        }
        let Some(owners) = self
            .step(&mut shutdown, || {
                derived::customers_of(&self.warehouse, &keys)
            })
            .await?
        else {
            return Ok(None);
        };
        Ok(Some((touched, owners)))
    }

    /// Runs one ClickHouse step, retrying while ClickHouse is unavailable.
    async fn step<T, F, Fut>(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        attempt: F,
    ) -> anyhow::Result<Option<T>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SinkError>>,
    {
        match retry(
            "clickhouse",
            &self.metrics,
            shutdown,
            attempt,
            SinkError::is_retryable,
        )
        .await
        {
            None => Ok(None),
            Some(Ok(value)) => Ok(Some(value)),
            Some(Err(error)) => bail!("a derive step failed: {error}"),
        }
    }

    /// Recomputes `contact_ids` from all their facts.
    async fn contacts(&self, contact_ids: &[&str]) -> Result<TouchedContacts, SinkError> {
        let started = Instant::now();
        let rows = derived::contact_facts(&self.warehouse, contact_ids).await?;
        let read = Instant::now();
        let mut facts: HashMap<&str, Vec<ContactFact>> = HashMap::new();
        let mut touched = TouchedContacts::default();
        for row in &rows {
            touched.days.insert(day_of_ms(row.occurred_at_ms));
            if !row.identity_key.is_empty() {
                touched.keys.insert(row.identity_key.clone());
            }
            if let Some(fact) = row.fact() {
                facts.entry(row.contact_id.as_str()).or_default().push(fact);
            }
        }
        let contacts: Vec<ContactRow> = facts
            .values()
            .filter_map(|facts| contact::contact(facts))
            .map(|c| ContactRow::new(&c))
            .collect();
        touched.contacts = contacts.len();
        let computed = Instant::now();
        self.warehouse.insert(&contacts).await?;
        log_step("contacts", contact_ids.len(), started, read, computed);
        Ok(touched)
    }

    /// Recomputes the journeys and stats of `customers`, each versioned by
    /// its mark's offset; returns the start days of their journeys before
    /// and after.
    async fn customers(
        &self,
        customers: &[(&str, u64)],
        reads: Reads,
    ) -> Result<BTreeSet<u16>, SinkError> {
        let ids: Vec<&str> = customers.iter().map(|(id, _)| *id).collect();
        let started = Instant::now();
        let scope = Scope::of_customers(&self.warehouse, ids.len()).await?;
        let inputs = derived::customer_inputs(&self.warehouse, &ids, reads, scope).await?;
        let read = Instant::now();
        let now = now_micros();
        let mut days = BTreeSet::new();
        let mut rows = Vec::with_capacity(customers.len());
        for ((id, version), input) in customers.iter().zip(inputs) {
            days.extend(input.stored_journey_days.iter().copied());
            let contacts: Vec<_> = input
                .contacts
                .iter()
                .filter_map(ContactRow::contact)
                .collect();
            let journeys = contact::journeys(&contacts);
            days.extend(journeys.iter().map(|j| day_of_ms(j.started_at_ms)));
            let channel_of: std::collections::HashMap<&str, Channel> = contacts
                .iter()
                .map(|c| (c.contact_id.as_str(), c.channel))
                .collect();
            let stats = CustomerStats::of(
                input.channels.iter().copied(),
                contacts.len() as u64,
                journeys.len() as u64,
                input.csat.iter().copied(),
            );
            rows.push(CustomerStateRow::new(
                id,
                &stats,
                &journeys,
                &channel_of,
                *version,
                now,
            ));
        }
        let computed = Instant::now();
        self.warehouse.insert(&rows).await?;
        let step = match scope {
            Scope::Listed => "customers",
            Scope::Whole => "customers (whole tables)",
        };
        log_step(step, customers.len(), started, read, computed);
        Ok(days)
    }

    /// Recomputes the metrics of `days`, each versioned by its mark's offset.
    async fn days(&self, days: &[(u16, u64)], reads: Reads) -> Result<(), SinkError> {
        let list: Vec<u16> = days.iter().map(|(day, _)| *day).collect();
        let started = Instant::now();
        let scope = Scope::of_days(&self.warehouse, list.len()).await?;
        let mut inputs = derived::day_inputs(&self.warehouse, &list, reads, scope).await?;
        let read = Instant::now();
        let mut channel_rows = Vec::with_capacity(days.len() * Channel::ALL.len());
        let mut consistency_rows = Vec::with_capacity(days.len());
        for (day, version) in days {
            let input = inputs.remove(day).unwrap_or_default();
            let metrics: Vec<ChannelDay> = Channel::ALL
                .into_iter()
                .map(|channel| {
                    let code = channel.code();
                    let outcomes: Vec<ContactOutcome> = input
                        .contacts
                        .iter()
                        .filter(|c| c.channel == code)
                        .map(|c| ContactOutcome {
                            resolved: c.resolved != 0,
                            handed_off: c.handed_off != 0,
                            abandoned: c.abandoned != 0,
                            first_response_ms: c.first_response_ms,
                            handle_seconds: c.handle_seconds,
                        })
                        .collect();
                    let scores: Vec<_> = input
                        .scores
                        .iter()
                        .filter(|s| s.channel == code)
                        .map(ScoreRow::scores)
                        .collect();
                    ChannelDay::of(channel, &outcomes, &scores)
                })
                .collect();
            let journeys: Vec<JourneyOutcome> = input
                .journeys
                .iter()
                .map(|j| JourneyOutcome {
                    contacts: j.contacts as usize,
                    channel_count: usize::from(j.channel_count),
                    channel_switches: j.channel_switches as usize,
                    one_contact_resolution: j.one_contact_resolution != 0,
                })
                .collect();
            let consistency = ConsistencyDay::of(&journeys, &metrics);
            for (channel, m) in Channel::ALL.into_iter().zip(&metrics) {
                channel_rows.push(ChannelDayRow::new(*day, channel, m, *version));
            }
            consistency_rows.push(ConsistencyDayRow::new(*day, &consistency, *version));
        }
        let computed = Instant::now();
        self.warehouse.insert(&channel_rows).await?;
        self.warehouse.insert(&consistency_rows).await?;
        let step = match scope {
            Scope::Listed => "days",
            Scope::Whole => "days (whole tables)",
        };
        log_step(step, days.len(), started, read, computed);
        Ok(())
    }
}

/// Moves the marks `placed` in partitions this instance owns into the
/// customers and days to recompute now (a placed mark is newer than any read
/// of its key), noting them as recomputed early.
fn take_owned(
    placed: Vec<(Mark, i32, u64)>,
    owned: &BTreeSet<i32>,
    pending: &mut ToDerive,
    early: &mut Vec<(Mark, i32, u64)>,
) {
    for (mark, partition, offset) in placed {
        if owned.contains(&partition) {
            pending.add(&mark, offset);
            early.push((mark, partition, offset));
        }
    }
}

/// Where a derive step's time went: reading its inputs, computing, writing
/// its rows (steps of one round overlap).
fn log_step(step: &str, items: usize, started: Instant, read: Instant, computed: Instant) {
    tracing::debug!(
        step,
        items,
        read_ms = (read - started).as_millis(),
        compute_ms = (computed - read).as_millis(),
        write_ms = computed.elapsed().as_millis(),
        "derive step"
    );
}

/// What recomputing a batch's contacts found.
#[derive(Debug, Default)]
struct TouchedContacts {
    contacts: usize,
    /// Days of their events: a contact's start day before and after.
    days: BTreeSet<u16>,
    /// Identity keys of their events: its customer before and after.
    keys: HashSet<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_through_their_keys() {
        for mark in [
            Mark::Customer("c_0123456789abcdef".into()),
            Mark::Day(20_779),
        ] {
            assert_eq!(Mark::parse(mark.key().as_bytes()), Some(mark));
        }
        for bad in [&b"day:x"[..], b"customer", b"", b"\xff"] {
            assert_eq!(Mark::parse(bad), None);
        }
    }

    #[test]
    fn a_batch_keeps_the_newest_offset_of_each_mark() {
        let mut batch = DerivedBatch::default();
        assert!(batch.work.is_empty());
        batch.add_mark(b"day:3", 7);
        batch.add_mark(b"day:3", 5);
        batch.add_mark(b"customer:c_1", 9);
        batch.add_mark(b"nonsense", 10);
        let marks = &batch.work.marks;
        assert_eq!(marks.get(&Mark::Day(3)), Some(&7));
        assert_eq!(marks.get(&Mark::Customer("c_1".into())), Some(&9));
        assert_eq!(marks.len(), 2);
    }

    #[test]
    fn a_mark_recomputed_early_is_skipped_until_read_back_or_superseded() {
        let owned = BTreeSet::from([0, 1]);
        let customer = |id: &str| Mark::Customer(id.into());
        let mut early = EarlyMarks::default();
        early.record(vec![
            (customer("c_1"), 0, 10),
            (customer("c_2"), 0, 20),
            (customer("c_3"), 1, 30),
            (Mark::Day(7), 1, 40),
            (customer("c_4"), 2, 50),
        ]);
        // Read: c_1 before its early offset, c_2 at it, c_3 after it, day 7
        // at it, and c_5, never recomputed early.
        let read = HashMap::from([
            (customer("c_1"), 9),
            (customer("c_2"), 20),
            (customer("c_3"), 31),
            (Mark::Day(7), 40),
            (customer("c_5"), 3),
        ]);
        let (pending, skipped) = early.pending(&read, &owned);
        assert_eq!(
            pending.customers,
            BTreeMap::from([("c_3".into(), 31), ("c_5".into(), 3)])
        );
        assert!(pending.days.is_empty());
        assert_eq!(skipped, 3);
        // c_1 waits for its own mark; c_4's partition is no longer owned.
        assert_eq!(early.0, HashMap::from([(customer("c_1"), (0, 10))]));
        let (pending, skipped) = early.pending(&HashMap::from([(customer("c_1"), 10)]), &owned);
        assert_eq!(pending, ToDerive::default());
        assert_eq!(skipped, 1);
        assert!(early.0.is_empty());
    }

    #[test]
    fn only_placed_marks_of_owned_partitions_are_taken_early() {
        let owned = BTreeSet::from([1]);
        let mut pending = ToDerive::default();
        pending.add(&Mark::Customer("c_1".into()), 4);
        let mut early = Vec::new();
        let placed = vec![
            (Mark::Customer("c_1".into()), 1, 9),
            (Mark::Customer("c_2".into()), 0, 8),
            (Mark::Day(3), 1, 10),
        ];
        take_owned(placed, &owned, &mut pending, &mut early);
        assert_eq!(pending.customers, BTreeMap::from([("c_1".to_owned(), 9)]));
        assert_eq!(pending.days, BTreeMap::from([(3, 10)]));
        assert_eq!(
            early,
            vec![(Mark::Customer("c_1".into()), 1, 9), (Mark::Day(3), 1, 10)]
        );
    }

    #[test]
    fn merged_work_keeps_everything_and_the_newest_offsets() {
        let mut first = DerivedBatch::default();
        first.add_mark(b"day:3", 7);
        first.add_mark(b"customer:c_1", 2);
        let mut second = DerivedBatch::default();
        second.add_mark(b"day:3", 4);
        second.add_mark(b"customer:c_1", 11);
        second.add_mark(b"day:9", 1);
        second.work.contact_ids.insert("k-1".into());
        second.work.keys.insert("account:A-1".into());
        second.work.score_days.insert(9);
        let mut work = first.work;
        work.merge(second.work);
        assert_eq!(work.marks.get(&Mark::Day(3)), Some(&7));
        assert_eq!(work.marks.get(&Mark::Customer("c_1".into())), Some(&11));
        assert_eq!(work.marks.get(&Mark::Day(9)), Some(&1));
        assert!(work.contact_ids.contains("k-1") && work.keys.contains("account:A-1"));
        assert_eq!(work.score_days, BTreeSet::from([9]));
    }
}
