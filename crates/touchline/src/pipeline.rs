//! The consumer-group pipeline: Kafka, decode, normalise, ClickHouse.
//!
//! Messages are taken in batches (up to a size, or whatever arrived within the
//! linger time), and each message is decoded and normalised as it arrives, so
//! that no copy of it is kept. A batch may grow to a larger size while at
//! least that many messages already wait on the broker ([`crate::unread`]):
//! catching up costs ClickHouse less per message in fewer, larger inserts,
//! while a pipeline that keeps up writes small batches that stay fresh.
//!
//! Each batch becomes timeline rows, dead letters and the rows contacts are
//! derived from, which are written to ClickHouse (with its identity links to
//! Kafka, all at once) while the next batch is being read; at most one batch
//! is being written at a time. A batch of derive marks alone has nothing to
//! write and is confirmed as it is read.
//!
//! Once ClickHouse has confirmed a batch, its derive work (contacts,
//! customers, days: [`crate::derive`]) joins the next derive round, which
//! runs beside the following batches' writes and takes every batch confirmed
//! since the previous round began. Only when that round is done are the
//! batch's offsets stored for the next commit (`enable.auto.offset.store =
//! false`), in order. A crash therefore redelivers at most the batches not
//! yet derived, and every table absorbs the redelivery. The timeline is
//! queryable as soon as its batch is confirmed; the derived tables follow a
//! round later. While batches keep coming, a round starts at most every
//! `derive_interval` (its reads scan tables, so fewer, larger rounds cost
//! less); when nothing new arrives, at once. A write or round that ends
//! while the loop waits for messages is taken then, not at the end of the
//! linger, so rounds that follow one another (one reading back the marks
//! the previous produced, or recomputing what another instance's marks
//! name) do not wait a linger each. Rounds that fall
//! behind slow reading down: at most `derive_backlog_messages` written
//! messages wait for a round.
//!
//! Failures are classified: bad data goes to the dead-letter table and the
//! pipeline goes on; an unreachable registry or ClickHouse is waited out with
//! backoff (nothing is dead-lettered, nothing is committed meanwhile, and
//! consumption pauses because the loop does not fetch while it retries); a
//! refusal that retrying cannot fix stops the pipeline with the reason.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use touchline_avro::{Decoder, SchemaRegistry};
use touchline_clickhouse::derived::Reads;
use touchline_clickhouse::{
    DeadLetterRow, SinkError, SourcePosition, Table, TextRow, TimelineRow, Warehouse,
};
use touchline_model::identity::record::{identifiers_cached, PhoneCache};
use touchline_model::identity::Identifier;
use touchline_model::{normalise, privacy, Channel};

use crate::derive::{DeriveWork, DerivedBatch, Deriver};
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::unread::{self, Unread};

/// How the pipeline consumes and batches.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Consumer group; instances of one group share the partitions.
    pub group_id: String,
    /// Prepended to each channel's source topic name (empty in production;
    /// lets tests and staging environments share a broker).
    pub topic_prefix: String,
    /// A batch is flushed at this many messages...
    pub batch_max_messages: usize,
    /// ...or at this many (at least `batch_max_messages`) when, as it
    /// starts, at least as many wait on the broker for this instance...
    pub batch_catch_up_messages: usize,
    /// ...or when this long has passed since it started.
    pub batch_linger: Duration,
    /// Written messages that may wait for a derive round before reading
    /// waits for the running one: it bounds what a crash redelivers and the
    /// memory of the waiting work, and absorbs rounds slower than the
    /// batches (the timeline stays fresh while derived tables lag).
    pub derive_backlog_messages: u64,
    /// While batches keep coming, a derive round starts at most this long
    /// after the previous one started: a round's reads scan tables, so
    /// spacing rounds spends less of the machine on them, and the derived
    /// tables lag the timeline by up to this much more.
    pub derive_interval: Duration,
    /// Exit once every assigned partition has been read to its end.
    pub until_caught_up: bool,
    /// Channels whose message text is stored (`privacy.store_text`).
    pub text_channels: Vec<Channel>,
}

/// When [`Pipeline::derive`] may start the next round ([`Pace::allows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// Batches keep coming: once `derive_interval` has passed since the
    /// last round started.
    Busy,
    /// Nothing new to read, or only derive marks in a batch the linger
    /// cut short: at once.
    Idle,
    /// The backlog is full, or the pipeline drains: wait for the running
    /// round, then start at once.
    Wait,
}

impl Pace {
    /// Whether a round may start `since_last` after the last one started.
    fn allows(self, since_last: Duration, interval: Duration) -> bool {
        self != Pace::Busy || since_last >= interval
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    pub messages: u64,
    pub events: u64,
    pub dead_letters: u64,
    /// Batches with messages, and the largest of them.
    pub batches: u64,
    pub largest_batch: u64,
}

/// Raw phone strings whose normal form the pipeline remembers, per
/// generation (at most twice this many are held, about 100 bytes each).
const PHONE_CACHE_CAPACITY: usize = 200_000;

/// The pipeline of one instance.
pub struct Pipeline<R> {
    /// Shared with the caught-up checks, which ask the broker beside the
    /// loop.
    consumer: Arc<StreamConsumer<Unread>>,
    decoder: Decoder<R>,
    sink: Sink,
    config: PipelineConfig,
    /// The channel of each subscribed topic.
    channels: HashMap<String, Channel>,
    /// Next offset to read of every partition this instance has written.
    processed: HashMap<(String, i32), i64>,
    /// Normal forms of recently seen raw phone numbers.
    phones: Mutex<PhoneCache>,
    /// Confirmed batches waiting for the next derive round.
    underived: Underived,
    /// When the last derive round started.
    round_started: Instant,
    /// Whether the last batch read had rows to write: source messages keep
    /// coming, so a round shares ClickHouse with their writes (read one
    /// query at a time).
    sources_flowing: bool,
}

/// Where a batch goes: what a write task needs, cheap to clone.
#[derive(Clone)]
struct Sink {
    warehouse: Warehouse,
    identity: Arc<Identity>,
    deriver: Deriver,
    metrics: Metrics,
    /// Signalled when a batch's write or a derive round ends, so that a
    /// loop waiting for messages that do not come takes its result at once.
    settled: Arc<Notify>,
}

/// One batch turned into rows, not yet written.
#[derive(Default)]
struct Prepared {
    /// Messages read, derive marks included.
    messages: u64,
    /// Of those, messages of the derive-mark topic.
    marks: u64,
    /// The batch's size limit: `batch_max_messages`, or
    /// `batch_catch_up_messages` while a backlog waits.
    limit: u64,
    timeline: Vec<TimelineRow>,
    texts: Vec<TextRow>,
    dead_letters: Vec<DeadLetterRow>,
    link_sets: Vec<Vec<Identifier>>,
    /// Next offset of each partition in the batch (a handful: a list).
    next_offsets: Vec<(String, i32, i64)>,
    consumed_by_channel: HashMap<Channel, u64>,
    written_by_channel: HashMap<Channel, u64>,
    suppressed_by_channel: HashMap<Channel, u64>,
    broker_timestamps_ms: Vec<i64>,
    /// What the batch adds to contacts, journeys and the daily metrics.
    derived: DerivedBatch,
    /// Read nothing: a write or derive round ended first.
    woken: bool,
}

impl Prepared {
    /// Nothing for ClickHouse or the link topic: derive marks (and
    /// tombstones) only.
    fn writes_nothing(&self) -> bool {
        let derived = &self.derived;
        self.timeline.is_empty()
            && self.texts.is_empty()
            && self.dead_letters.is_empty()
            && self.link_sets.is_empty()
            && derived.facts.is_empty()
            && derived.scores.is_empty()
            && derived.channels.is_empty()
    }

    fn saw_offset(&mut self, topic: &str, partition: i32, offset: i64) {
        advance(&mut self.next_offsets, topic, partition, offset + 1);
    }
}

/// Moves the next offset of `topic`'s `partition` in `offsets` to `next`,
/// unless it is past it already.
fn advance(offsets: &mut Vec<(String, i32, i64)>, topic: &str, partition: i32, next: i64) {
    match offsets
        .iter_mut()
        .find(|(t, p, _)| *p == partition && t == topic)
    {
        Some((_, _, stored)) => *stored = (*stored).max(next),
        None => offsets.push((topic.to_owned(), partition, next)),
    }
}

/// Confirmed batches whose offsets wait for a derive round: their merged
/// work and offsets.
#[derive(Default)]
struct Underived {
    work: DeriveWork,
    next_offsets: Vec<(String, i32, i64)>,
    batches: u64,
    /// Messages read, derive marks included.
    messages: u64,
    /// Of those, messages of the derive-mark topic.
    marks: u64,
}

impl Underived {
    fn add(&mut self, prepared: &mut Prepared) {
        self.work.merge(std::mem::take(&mut prepared.derived.work));
        for (topic, partition, next) in &prepared.next_offsets {
            advance(&mut self.next_offsets, topic, *partition, *next);
        }
        self.batches += 1;
        self.messages += prepared.messages;
        self.marks += prepared.marks;
    }
}

/// What a caught-up check found: the assignment, where the group's offsets
/// stand, and where each partition (and the link topic) starts and ends.
struct Ends {
    assignment: TopicPartitionList,
    committed: TopicPartitionList,
    ends: TopicPartitionList,
    starts: TopicPartitionList,
}

/// A caught-up check's questions to the broker, running beside the loop.
type Checking = JoinHandle<anyhow::Result<Ends>>;

/// The write of one batch, running while the next one is read.
type Writing = JoinHandle<anyhow::Result<(Prepared, bool)>>;

/// A derive round, running while the next batches are read and written;
/// hands back the batches it covered, with `false` when shutdown came first.
type Deriving = JoinHandle<anyhow::Result<(Underived, bool)>>;

impl<R: SchemaRegistry> Pipeline<R> {
    /// Joins the consumer group and subscribes to the four source topics.
    /// `client` holds the connection settings (brokers, TLS, SASL).
    pub fn new(
        config: PipelineConfig,
        client: &ClientConfig,
        decoder: Decoder<R>,
        warehouse: Warehouse,
        identity: Arc<Identity>,
        deriver: Deriver,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let mut client = client.clone();
        client
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("allow.auto.create.topics", "false")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            // Bound what librdkafka prefetches while a batch is being written
            // (or ClickHouse is waited out): 16 MiB, not the default 64 MiB.
            .set("queued.max.messages.kbytes", "16384")
            .set("fetch.max.bytes", "16777216")
            // When that queue is full (a write is slow), fetch again 10 ms
            // after it drains, not librdkafka's default 1 s later.
            .set("fetch.queue.backoff.ms", "10")
            .set("statistics.interval.ms", unread::STATISTICS_INTERVAL_MS);
        // Keep `touchline-bench drain` (the bare-consumer ceiling) in step
        // with these settings.
        let channels: HashMap<String, Channel> = Channel::ALL
            .into_iter()
            .map(|c| (format!("{}{}", config.topic_prefix, c.source_topic()), c))
            .collect();
        let unread = Unread::new(channels.keys().cloned(), metrics.unread_messages.clone());
        let consumer: StreamConsumer<Unread> = client
            .create_with_context(unread)
            .context("cannot create the Kafka consumer")?;
        let mut topics: Vec<&str> = channels.keys().map(String::as_str).collect();
        topics.push(deriver.topic());
        consumer
            .subscribe(&topics)
            .context("cannot subscribe to the source topics and the derive-mark topic")?;
        tracing::info!(group = %config.group_id, ?topics, "subscribed");
        Ok(Pipeline {
            consumer: Arc::new(consumer),
            decoder,
            sink: Sink {
                warehouse,
                identity,
                deriver,
                metrics,
                settled: Arc::new(Notify::new()),
            },
            config,
            channels,
            processed: HashMap::new(),
            phones: Mutex::new(PhoneCache::new(PHONE_CACHE_CAPACITY)),
            underived: Underived::default(),
            round_started: Instant::now(),
            sources_flowing: false,
        })
    }

    /// Runs until `shutdown` turns true (or, with `until_caught_up`, until
    /// drained), then commits what was written.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<Totals> {
        let mut totals = Totals::default();
        let mut last_check = Instant::now();
        // Caught up only when two checks a second apart, with no message in
        // between, both find every partition read to its high watermark: a
        // broker may report a watermark that lags its last append.
        let mut caught_up_checks = 0;
        // The check asking the broker, beside the loop: it takes a second
        // or more, which the loop spends reading and deriving.
        let mut checking: Option<Checking> = None;
        // The batch being written while the next one is read, and the
        // derive round running beside both.
        let mut writing: Option<Writing> = None;
        let mut deriving: Option<Deriving> = None;
        let backlog = self.config.derive_backlog_messages;
        while !*shutdown.borrow() {
            let started = Instant::now();
            let Some(prepared) = self.next_batch(&mut shutdown).await else {
                break;
            };
            if prepared.messages == 0 {
                // Nothing read for a whole linger, or a write or round ended
                // before the first message came: then only what has ended is
                // taken, and a round starts as if batches kept coming.
                let idle = !prepared.woken;
                if let Some(write) = writing.take_if(|write| idle || write.is_finished()) {
                    if !self.finish(write, &mut totals).await? {
                        break;
                    }
                }
                let pace = if idle { Pace::Idle } else { Pace::Busy };
                if idle {
                    self.sources_flowing = false;
                }
                if !self.derive(&mut deriving, &shutdown, pace).await? {
                    break;
                }
                if !idle || !self.config.until_caught_up {
                    continue;
                }
                if let Some(check) = checking.take_if(|check| check.is_finished()) {
                    // A slow broker may time the check out: that is not
                    // being caught up, and no reason to stop.
                    let caught_up = match check.await.context("a caught-up check panicked")? {
                        Ok(ends) => self.caught_up(&ends),
                        Err(error) => {
                            tracing::warn!(error = %format!("{error:#}"), "caught-up check failed; checking again");
                            false
                        }
                    };
                    tracing::debug!(
                        caught_up,
                        check_ms = last_check.elapsed().as_millis(),
                        "caught-up check"
                    );
                    caught_up_checks = if caught_up { caught_up_checks + 1 } else { 0 };
                    if caught_up_checks >= 2 {
                        tracing::info!(?totals, "caught up with every assigned partition");
                        break;
                    }
                }
                if checking.is_none() && last_check.elapsed() >= Duration::from_secs(1) {
                    last_check = Instant::now();
                    checking = Some(self.check_ends());
                }
                continue;
            }
            // A check that began before these messages says nothing of them.
            caught_up_checks = 0;
            checking = None;
            let read_in = started.elapsed();
            // One batch in flight at a time: the previous one is confirmed
            // before this one's write starts.
            let waited = Instant::now();
            if let Some(write) = writing.take() {
                if !self.finish(write, &mut totals).await? {
                    break;
                }
            }
            let (messages, limit) = (prepared.messages, prepared.limit);
            self.consumer.context().read(messages - prepared.marks);
            totals.batches += 1;
            totals.largest_batch = totals.largest_batch.max(messages);
            // A batch of derive marks only has nothing to write: it is
            // confirmed now, so that a round starting now takes it (a
            // round's marks arrive in several batches).
            let to_write = if prepared.writes_nothing() {
                self.confirmed(prepared, Duration::ZERO, &mut totals);
                None
            } else {
                Some(prepared)
            };
            // A round that falls behind holds reading back. A batch of
            // marks alone that the linger cut short says the sources had
            // nothing for a whole linger: the next round need not wait for
            // another.
            let backlogged = self.underived.messages >= backlog;
            let quiet = to_write.is_none() && messages < limit;
            let pace = if backlogged {
                Pace::Wait
            } else if quiet {
                Pace::Idle
            } else {
                Pace::Busy
            };
            self.sources_flowing = to_write.is_some();
            if !self.derive(&mut deriving, &shutdown, pace).await? {
                break;
            }
            tracing::debug!(
                messages,
                limit,
                read_ms = read_in.as_millis(),
                waited_for_previous_ms = waited.elapsed().as_millis(),
                backlogged,
                "batch read"
            );
            if let Some(prepared) = to_write {
                writing = Some(tokio::spawn(settling(
                    self.sink.settled.clone(),
                    write(self.sink.clone(), prepared, shutdown.clone()),
                )));
            }
        }
        if let Some(write) = writing.take() {
            self.finish(write, &mut totals).await?;
        }
        self.sources_flowing = false;
        // Every confirmed batch is derived before the last commit (unless
        // shutdown came while ClickHouse or the broker was unavailable).
        while deriving.is_some() || self.underived.batches > 0 {
            if !self.derive(&mut deriving, &shutdown, Pace::Wait).await? {
                break;
            }
        }
        if let Ok(phones) = self.phones.lock() {
            let (hits, misses) = phones.hits_and_misses();
            tracing::debug!(hits, misses, held = phones.len(), "phone cache");
        }
        self.consumer
            .commit_consumer_state(CommitMode::Sync)
            .or_else(|error| match error {
                // Nothing stored since the last commit: nothing to do.
                rdkafka::error::KafkaError::ConsumerCommit(
                    rdkafka::types::RDKafkaErrorCode::NoOffset,
                ) => Ok(()),
                other => Err(other),
            })
            .context("final commit of the written offsets failed; they will be redelivered")?;
        tracing::info!(?totals, "pipeline stopped, offsets committed");
        Ok(totals)
    }

    /// Waits for a batch's write; once ClickHouse confirmed it, counts it
    /// and queues its derive work for the next round. `Ok(false)` when
    /// shutdown came first.
    async fn finish(&mut self, write: Writing, totals: &mut Totals) -> anyhow::Result<bool> {
        let started = Instant::now();
        let (prepared, written) = write.await.context("a batch write panicked")??;
        if !written {
            return Ok(false);
        }
        self.confirmed(prepared, started.elapsed(), totals);
        Ok(true)
    }

    /// Counts a batch that ClickHouse confirmed (or that had nothing to
    /// write) and queues its derive work for the next round; `waited` is
    /// how long the loop waited for the write.
    fn confirmed(&mut self, mut prepared: Prepared, waited: Duration, totals: &mut Totals) {
        tracing::debug!(
            messages = prepared.messages,
            marks = prepared.marks,
            rows = prepared.timeline.len(),
            dead_letters = prepared.dead_letters.len(),
            waited_ms = waited.as_millis(),
            "batch inserted"
        );
        totals.messages += prepared.messages;
        totals.events += prepared.timeline.len() as u64;
        totals.dead_letters += prepared.dead_letters.len() as u64;
        self.record(&prepared);
        self.underived.add(&mut prepared);
        self.sink
            .metrics
            .underived_messages
            .set(i64::try_from(self.underived.messages).unwrap_or(i64::MAX));
    }

    /// Collects the running derive round once it is done (at `Pace::Wait`,
    /// waiting for it), storing the offsets of the batches it covered; then,
    /// if none is running, starts the next one over the confirmed batches
    /// that wait, as `pace` allows. `Ok(false)` when shutdown came first.
    async fn derive(
        &mut self,
        deriving: &mut Option<Deriving>,
        shutdown: &watch::Receiver<bool>,
        pace: Pace,
    ) -> anyhow::Result<bool> {
        if let Some(round) = deriving.take_if(|round| pace == Pace::Wait || round.is_finished()) {
            let (covered, done) = round.await.context("a derive round panicked")??;
            if !done {
                return Ok(false);
            }
            self.derived(&covered)?;
        }
        if deriving.is_none()
            && self.underived.batches > 0
            && pace.allows(self.round_started.elapsed(), self.config.derive_interval)
        {
            let round = std::mem::take(&mut self.underived);
            self.sink.metrics.underived_messages.set(0);
            if round.work.is_empty() {
                // Dead letters or compacted-away marks only: nothing to
                // recompute.
                self.derived(&round)?;
            } else {
                self.round_started = Instant::now();
                // While source messages keep coming, one read at a time, so
                // that each batch's write waits for one read at most and the
                // timeline stays fresh; once they stopped (nothing read for
                // a linger, or batches of derive marks alone, as after a
                // backlog) the round has ClickHouse to itself.
                let reads = if self.sources_flowing {
                    Reads::InTurn
                } else {
                    Reads::AtOnce
                };
                let owned = self.owned_mark_partitions();
                *deriving = Some(tokio::spawn(settling(
                    self.sink.settled.clone(),
                    derive(self.sink.clone(), round, reads, owned, shutdown.clone()),
                )));
            }
        }
        Ok(true)
    }

    /// The partitions of the mark topic assigned to this instance: the
    /// customers and days it owns; empty when the assignment cannot be read,
    /// which only leaves a round's own marks to be read back and recomputed.
    fn owned_mark_partitions(&self) -> BTreeSet<i32> {
        let topic = self.sink.deriver.topic();
        match self.consumer.assignment() {
            Ok(assignment) => assignment
                .elements_for_topic(topic)
                .iter()
                .map(|element| element.partition())
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "cannot read the assignment; a round's own marks wait to be read back");
                BTreeSet::new()
            }
        }
    }

    /// Stores the offsets of batches that are written and derived.
    fn derived(&mut self, covered: &Underived) -> anyhow::Result<()> {
        self.store_offsets(&covered.next_offsets)?;
        tracing::debug!(
            batches = covered.batches,
            messages = covered.messages,
            marks = covered.marks,
            "batches derived"
        );
        Ok(())
    }

    /// Reads up to a batch of messages, or what arrives within the linger
    /// time, decoding and normalising each as it arrives; returns at once,
    /// empty, when a write or derive round ends before the first message.
    /// `None` when shutdown came while the registry was unreachable.
    async fn next_batch(&self, shutdown: &mut watch::Receiver<bool>) -> Option<Prepared> {
        let linger = tokio::time::sleep(self.config.batch_linger);
        tokio::pin!(linger);
        let mut prepared = Prepared {
            limit: self.batch_limit(),
            ..Prepared::default()
        };
        while prepared.messages < prepared.limit {
            let received = tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                () = &mut linger => break,
                received = self.consumer.recv() => received,
                () = self.sink.settled.notified(), if prepared.messages == 0 => {
                    prepared.woken = true;
                    break;
                }
            };
            match received {
                Ok(message) => {
                    if !self.prepare(&message, &mut prepared, shutdown).await {
                        return None;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "Kafka error while consuming; librdkafka retries");
                    self.sink
                        .metrics
                        .retries
                        .with_label_values(&["kafka"])
                        .inc();
                }
            }
        }
        Some(prepared)
    }

    /// The size of the next batch: the catch-up size while at least that
    /// many messages wait on the broker, else `batch_max_messages`.
    fn batch_limit(&self) -> u64 {
        let catch_up = self.config.batch_catch_up_messages as u64;
        if self.consumer.context().messages() >= catch_up {
            catch_up
        } else {
            self.config.batch_max_messages as u64
        }
    }

    /// Decodes and normalises one message into `prepared`. `false` when
    /// shutdown came while the registry was unreachable.
    async fn prepare(
        &self,
        message: &BorrowedMessage<'_>,
        prepared: &mut Prepared,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let now_us = now_micros();
        let topic = message.topic();
        prepared.messages += 1;
        prepared.saw_offset(topic, message.partition(), message.offset());
        if let Some(ms) = message.timestamp().to_millis() {
            prepared.broker_timestamps_ms.push(ms);
        }
        let payload = message.payload().unwrap_or_default();
        let Some(&channel) = self.channels.get(topic) else {
            // A tombstone (no payload) on the mark topic is compaction
            // removing a key, not a change to recompute.
            if topic == self.sink.deriver.topic() && message.payload().is_some() {
                prepared.marks += 1;
                prepared
                    .derived
                    .add_mark(message.key().unwrap_or_default(), message.offset());
            }
            return true;
        };
        *prepared.consumed_by_channel.entry(channel).or_default() += 1;
        let metrics = &self.sink.metrics;
        let Some(decoded) = retry(
            "registry",
            metrics,
            shutdown,
            || self.decoder.decode(channel, payload),
            |error| error.is_retryable(),
        )
        .await
        else {
            return false;
        };
        let identity = &self.sink.identity;
        let outcome = decoded
            .map_err(|e| (e.reason(), e.to_string()))
            .map(|record| {
                let ids = match self.phones.lock() {
                    Ok(mut phones) => identifiers_cached(&record, &mut phones),
                    Err(poisoned) => identifiers_cached(&record, &mut poisoned.into_inner()),
                };
                (record, ids)
            });
        // An event of an erased customer is dropped, even a bad one: counted,
        // never stored, its identifiers never linked.
        if outcome
            .as_ref()
            .is_ok_and(|(_, ids)| identity.is_suppressed(ids))
        {
            *prepared.suppressed_by_channel.entry(channel).or_default() += 1;
            return true;
        }
        let outcome = outcome.and_then(|(record, ids)| {
            let event =
                normalise(&record, now_us / 1000).map_err(|e| (e.reason(), e.to_string()))?;
            let text = self
                .config
                .text_channels
                .contains(&channel)
                .then(|| privacy::free_text(&record).map(str::to_owned))
                .flatten();
            Ok((record, event, ids, text))
        });
        let position = SourcePosition {
            topic: topic.to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        };
        match outcome {
            Ok((record, event, ids, text)) => {
                for score in &event.dropped_scores {
                    metrics
                        .scores_dropped
                        .with_label_values(&[channel.as_str(), score.as_str()])
                        .inc();
                }
                *prepared.written_by_channel.entry(channel).or_default() += 1;
                let row = TimelineRow::new(&event, identity.key_of(&ids), &position, now_us);
                prepared
                    .derived
                    .add_event(&record, &event, &ids, &row.identity_key, row.version);
                if let Some(text) = text {
                    prepared.texts.push(TextRow::new(&row, &text));
                }
                prepared.timeline.push(row);
                prepared.link_sets.push(ids);
            }
            Err((reason, error)) => {
                tracing::debug!(topic = %position.topic, partition = position.partition, offset = position.offset, reason, %error, "dead letter");
                prepared.dead_letters.push(DeadLetterRow::new(
                    &position,
                    message.key().unwrap_or_default(),
                    reason,
                    error,
                    payload,
                    now_us,
                ));
            }
        }
        true
    }

    fn store_offsets(&mut self, next_offsets: &[(String, i32, i64)]) -> anyhow::Result<()> {
        let mut list = TopicPartitionList::new();
        for (topic, partition, next) in next_offsets {
            list.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
            self.processed.insert((topic.clone(), *partition), *next);
        }
        if let Err(error) = self.consumer.store_offsets(&list) {
            // A partition revoked by a rebalance cannot be stored; its new owner
            // re-reads from the last commit, and the sink absorbs the repeat.
            tracing::warn!(%error, "cannot store offsets (partitions revoked?); they will be redelivered");
        }
        Ok(())
    }

    fn record(&self, prepared: &Prepared) {
        let metrics = &self.sink.metrics;
        for (channel, count) in &prepared.consumed_by_channel {
            metrics
                .consumed
                .with_label_values(&[channel.as_str()])
                .inc_by(*count);
        }
        for (channel, count) in &prepared.written_by_channel {
            metrics
                .written
                .with_label_values(&[channel.as_str()])
                .inc_by(*count);
        }
        for (channel, count) in &prepared.suppressed_by_channel {
            metrics
                .suppressed
                .with_label_values(&[channel.as_str()])
                .inc_by(*count);
        }
        for row in &prepared.dead_letters {
            metrics
                .dead_letters
                .with_label_values(&[row.reason.as_str()])
                .inc();
        }
        let now_ms = now_micros() / 1000;
        for ms in &prepared.broker_timestamps_ms {
            #[allow(clippy::cast_precision_loss)]
            metrics
                .latency_seconds
                .observe((now_ms - ms).max(0) as f64 / 1000.0);
        }
        #[allow(clippy::cast_precision_loss)]
        metrics.batch_size.observe(prepared.messages as f64);
        metrics.batches.inc();
        metrics
            .cached_schemas
            .set(i64::try_from(self.decoder.cached_schemas()).unwrap_or(i64::MAX));
    }

    /// Asks the broker, beside the loop, where every assigned partition
    /// starts and ends, where the group's offsets stand and where the link
    /// topic ends: one `ListOffsets` request for every partition's end (and
    /// one for starts), since per-partition watermark queries cost a round
    /// trip each.
    fn check_ends(&self) -> Checking {
        let consumer = Arc::clone(&self.consumer);
        let links = self.sink.identity.topic().to_owned();
        tokio::task::spawn_blocking(move || {
            let assignment = consumer.assignment()?;
            if assignment.count() == 0 {
                // Nothing assigned (yet, or any more, as when a group has
                // more instances than partitions): never caught up, and
                // nothing to ask (librdkafka refuses an empty list).
                return Ok(Ends {
                    committed: TopicPartitionList::new(),
                    ends: TopicPartitionList::new(),
                    starts: TopicPartitionList::new(),
                    assignment,
                });
            }
            let timeout = Duration::from_secs(5);
            let list = |mut partitions: TopicPartitionList, at: Offset| {
                partitions.set_all_offsets(at)?;
                anyhow::Ok(consumer.offsets_for_times(partitions, timeout)?)
            };
            let mut ends = assignment.clone();
            ends.add_partition(&links, 0);
            Ok(Ends {
                committed: consumer.committed_offsets(assignment.clone(), timeout)?,
                ends: list(ends, Offset::End)?,
                starts: list(assignment.clone(), Offset::Beginning)?,
                assignment,
            })
        })
    }

    /// Whether every partition of `checked`'s assignment has been written up
    /// to the end it found, and the link topic's changes up to its end.
    fn caught_up(&self, checked: &Ends) -> bool {
        if checked.assignment.count() == 0 {
            return false;
        }
        let offset = |list: &TopicPartitionList, topic: &str, partition: i32| {
            list.find_partition(topic, partition)
                .and_then(|e| e.offset().to_raw())
                .filter(|o| *o >= 0)
        };
        for element in checked.assignment.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            let Some(high) = offset(&checked.ends, topic, partition) else {
                return false;
            };
            let written = self.processed.get(&(topic.to_owned(), partition)).copied();
            let next = written
                .max(offset(&checked.committed, topic, partition))
                .or_else(|| offset(&checked.starts, topic, partition))
                .unwrap_or(0);
            if next < high {
                return false;
            }
        }
        let links_end = offset(&checked.ends, self.sink.identity.topic(), 0).unwrap_or(0);
        self.sink.identity.written_up_to(links_end)
    }
}

/// Runs `task`, then wakes the loop if it is waiting for messages.
async fn settling<T>(settled: Arc<Notify>, task: impl Future<Output = T>) -> T {
    let output = task.await;
    settled.notify_one();
    output
}

/// Writes a prepared batch: its identity links to Kafka and its dead
/// letters, timeline rows, message texts and the rows contacts are derived
/// from to ClickHouse, all at once, waiting out either being unavailable.
/// Hands the batch back with `true` once all are confirmed, `false` when
/// shutdown came first.
async fn write(
    sink: Sink,
    prepared: Prepared,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(Prepared, bool)> {
    let mut to_links = shutdown.clone();
    let links = async {
        retry(
            "kafka",
            &sink.metrics,
            &mut to_links,
            || sink.identity.publish(&prepared.link_sets),
            |_| true,
        )
        .await
        .is_some()
    };
    let derived = &prepared.derived;
    let (published, dead, timeline, texts, facts, scores, channels) = tokio::join!(
        links,
        insert(&sink, &prepared.dead_letters, shutdown.clone()),
        insert(&sink, &prepared.timeline, shutdown.clone()),
        insert(&sink, &prepared.texts, shutdown.clone()),
        insert(&sink, &derived.facts, shutdown.clone()),
        insert(&sink, &derived.scores, shutdown.clone()),
        insert(&sink, &derived.channels, shutdown.clone()),
    );
    let written = published && dead? && timeline? && texts? && facts? && scores? && channels?;
    Ok((prepared, written))
}

/// Runs the derive round of confirmed batches; hands them back with `true`
/// once it is done, `false` when shutdown came first.
async fn derive(
    sink: Sink,
    round: Underived,
    reads: Reads,
    owned: BTreeSet<i32>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(Underived, bool)> {
    let started = Instant::now();
    let Some(done) = sink
        .deriver
        .run(&round.work, reads, &owned, &mut shutdown)
        .await?
    else {
        return Ok((round, false));
    };
    let took = started.elapsed();
    sink.metrics.derive_seconds.observe(took.as_secs_f64());
    tracing::debug!(
        batches = round.batches,
        contacts = done.contacts,
        customers = done.customers,
        days = done.days,
        early = done.early,
        skipped = done.skipped,
        marks_produced = done.marks_produced,
        at_once = reads == Reads::AtOnce,
        derive_ms = took.as_millis(),
        "derive round"
    );
    Ok((round, true))
}

/// Inserts `rows` into their table, waiting out ClickHouse being
/// unavailable. `Ok(false)` when shutdown came first.
async fn insert<T: Table>(
    sink: &Sink,
    rows: &[T],
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<bool> {
    let table = <T as Table>::NAME;
    if rows.is_empty() {
        return Ok(true);
    }
    let started = Instant::now();
    let result = retry(
        "clickhouse",
        &sink.metrics,
        &mut shutdown,
        || sink.warehouse.insert(rows),
        SinkError::is_retryable,
    )
    .await;
    match result {
        None => Ok(false),
        Some(Err(error)) => bail!("cannot write {} rows to {table}: {error}", rows.len()),
        Some(Ok(())) => {
            sink.metrics
                .insert_seconds
                .with_label_values(&[table])
                .observe(started.elapsed().as_secs_f64());
            Ok(true)
        }
    }
}

/// Runs `attempt` until it succeeds or fails for good, backing off between
/// retryable failures. `None` when shutdown came while retrying.
pub(crate) async fn retry<T, E, F, Fut>(
    stage: &str,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
    mut attempt: F,
    retryable: impl Fn(&E) -> bool,
) -> Option<Result<T, E>>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Duration::from_millis(200);
    loop {
        match attempt().await {
            Err(error) if retryable(&error) => {
                metrics.retries.with_label_values(&[stage]).inc();
                tracing::warn!(stage, %error, retry_in = ?backoff, "unavailable; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return None,
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            done => return Some(done),
        }
    }
}

pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_rounds_wait_out_the_interval_and_the_others_start_at_once() {
        let interval = Duration::from_secs(5);
        assert!(!Pace::Busy.allows(Duration::ZERO, interval));
        assert!(!Pace::Busy.allows(Duration::from_millis(4_999), interval));
        assert!(Pace::Busy.allows(interval, interval));
        for pace in [Pace::Idle, Pace::Wait] {
            assert!(pace.allows(Duration::ZERO, interval), "{pace:?}");
        }
        // An interval of 0: rounds back to back.
        assert!(Pace::Busy.allows(Duration::ZERO, Duration::ZERO));
    }
}
