//! Identity resolution across instances: the link log and this instance's
//! copy of the identity graph (design: `docs/design/20261122_identity.md`).
//!
//! The pipeline hands each batch's link sets (an event's identifiers) to
//! [`Identity::publish`], which produces the sets this instance has not seen
//! to the link topic. [`Identity::follow`] reads the whole link topic, applies
//! every set to the graph, and writes the identifiers whose customer changed
//! to ClickHouse, versioned by how far the graph has read the link topic.
//!
//! Erasure (`touchline forget`, `docs/design/20261122_privacy.md`): the
//! fingerprints of erased identifiers are on a second compacted topic, the
//! suppression list, which every instance reads whole before the links and
//! follows after. [`Identity::is_suppressed`] tells the pipeline which events
//! to drop; a link set holding a suppressed identifier is never applied, and
//! when a new fingerprint arrives the graph is rebuilt from the link topic
//! without the sets it suppresses.

use std::collections::{BTreeSet, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::watch;
use touchline_clickhouse::{derived, IdentityRow, SinkError, Warehouse};
use touchline_model::identity::{Identifier, IdentityGraph};
use touchline_model::{Fingerprint, Pseudonymiser};

use crate::derive::{Mark, MarkProducer};
use crate::metrics::Metrics;
use crate::pipeline::{now_micros, retry};
use crate::produce::BatchProducer;

/// The link topic's name, after the topic prefix.
pub const LINK_TOPIC: &str = "touchline.identity.links";
/// The suppression list's topic, after the topic prefix: the fingerprints of
/// erased identifiers, one a message (key and payload, 64 hex digits).
pub const SUPPRESSION_TOPIC: &str = "touchline.privacy.suppressed";
/// The link topic has one partition: every instance reads all of it, and one
/// partition gives every instance the same order. So has the suppression
/// list.
const LINK_PARTITION: i32 = 0;
/// Bits of an assignment's version that hold the link offset; the bits
/// above hold the size of the suppression list the graph was built with.
const OFFSET_BITS: u32 = 40;

/// This instance's identity state, shared by the pipeline and the follower.
pub struct Identity {
    topic: String,
    suppression_topic: String,
    producer: BatchProducer,
    /// Fingerprints of erased identifiers.
    suppressed: RwLock<HashSet<Fingerprint>>,
    /// Every identifier and customer id reaches ClickHouse through it.
    pseudonymiser: Pseudonymiser,
    graph: Mutex<IdentityGraph>,
    /// Hashes of the link sets applied or produced by this instance.
    known: Mutex<HashSet<u64>>,
    hasher: std::collections::hash_map::RandomState,
    /// Next offset of the link topic to apply to the graph.
    applied: AtomicU64,
    /// Next offset of the link topic whose changes are written to ClickHouse.
    written_through: AtomicI64,
    metrics: Metrics,
}

impl Identity {
    /// Creates the link topic if it does not exist, and the producer.
    pub async fn new(
        client: &ClientConfig,
        topic_prefix: &str,
        pseudonymiser: Pseudonymiser,
        metrics: Metrics,
    ) -> anyhow::Result<Arc<Identity>> {
        let topic = format!("{topic_prefix}{LINK_TOPIC}");
        ensure_topic(client, &topic, 1).await?;
        let suppression_topic = format!("{topic_prefix}{SUPPRESSION_TOPIC}");
        ensure_topic(client, &suppression_topic, 1).await?;
        let producer = BatchProducer::new(client, "identity-link")?;
        Ok(Arc::new(Identity {
            topic,
            suppression_topic,
            producer,
            suppressed: RwLock::new(HashSet::new()),
            pseudonymiser,
            graph: Mutex::new(IdentityGraph::new()),
            known: Mutex::new(HashSet::new()),
            hasher: std::collections::hash_map::RandomState::new(),
            applied: AtomicU64::new(0),
            written_through: AtomicI64::new(0),
            metrics,
        }))
    }

    /// Produces the link sets this instance has not seen yet, and waits until
    /// the broker has them all.
    pub async fn publish(&self, sets: &[Vec<Identifier>]) -> anyhow::Result<()> {
        let mut fresh: Vec<String> = Vec::new();
        {
            let mut known = lock(&self.known);
            for set in sets.iter().filter(|s| !s.is_empty()) {
                let key = link_key(set);
                if known.insert(self.hash(&key)) {
                    fresh.push(key);
                }
            }
        }
        let sent = self
            .producer
            .send_keys(&self.topic, Some(LINK_PARTITION), &fresh)
            .await;
        if let Err(error) = sent {
            // Forget this batch's sets so that the retry sends them again.
            let mut known = lock(&self.known);
            for key in &fresh {
                known.remove(&self.hash(key));
            }
            bail!("cannot produce identity links to {}: {error}", self.topic);
        }
        self.metrics.links_produced.inc_by(fresh.len() as u64);
        Ok(())
    }

    /// The stored form of an event's identity key (its first identifier in
    /// anchor order), or empty.
    pub fn key_of(&self, set: &[Identifier]) -> String {
        set.first()
            .map(|id| self.pseudonymiser.stored(id))
            .unwrap_or_default()
    }

    /// Whether every link up to `end` (the link topic's high watermark at
    /// some moment) has been applied and its changes written.
    pub fn written_up_to(&self, end: i64) -> bool {
        self.written_through.load(Ordering::SeqCst) >= end
    }

    /// The link topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Whether an event with these identifiers must be dropped: one of them
    /// was erased. Free while the suppression list is empty.
    pub fn is_suppressed(&self, ids: &[Identifier]) -> bool {
        let suppressed = self.suppressed.read().unwrap_or_else(|e| e.into_inner());
        !suppressed.is_empty()
            && ids
                .iter()
                .any(|id| suppressed.contains(&self.pseudonymiser.fingerprint(id)))
    }

    /// Adds a fingerprint (a suppression-list message); whether it is new.
    fn suppress(&self, payload: Option<&[u8]>) -> bool {
        let Some(print) = payload
            .and_then(|p| std::str::from_utf8(p).ok())
            .and_then(Fingerprint::parse_hex)
        else {
            tracing::warn!("skipping an unreadable suppression-list entry");
            return false;
        };
        self.suppressed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(print)
    }

    /// The version of assignments written now: the suppression list's size
    /// above the link offset, so that a graph rebuilt without erased
    /// identifiers outranks any graph built before it.
    fn version(&self) -> u64 {
        let suppressed = self
            .suppressed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len() as u64;
        (suppressed << OFFSET_BITS) | self.applied.load(Ordering::SeqCst)
    }

    /// Reads the suppression list, then the link topic from its beginning,
    /// for as long as the process runs: applies every link set to the graph
    /// and writes the changed assignments. The first write waits until the
    /// topic's existing links are all applied, so a restart never writes a
    /// partial graph's answers. A new suppression-list entry rebuilds the
    /// graph the same way.
    pub async fn follow(
        self: Arc<Self>,
        client: ClientConfig,
        warehouse: Warehouse,
        marks: MarkProducer,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut suppression_next =
            read_whole(&client, &self.suppression_topic, |_, _, payload| {
                self.suppress(payload);
            })?;
        let mut initial_end = end_of(&client, &self.topic)?;
        tracing::info!(
            topic = %self.topic,
            links = initial_end,
            suppressed = self.suppressed.read().map(|s| s.len()).unwrap_or_default(),
            "loading the identity graph"
        );
        while !*shutdown.borrow() {
            // A fresh consumer per build of the graph: nothing prefetched for
            // an earlier build can reach this one.
            let consumer: StreamConsumer = client
                .clone()
                .set("group.id", "touchline-identity-follower")
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .create()
                .context("cannot create the identity-link consumer")?;
            let mut assignment = TopicPartitionList::new();
            assignment.add_partition_offset(&self.topic, LINK_PARTITION, Offset::Beginning)?;
            assignment.add_partition_offset(
                &self.suppression_topic,
                LINK_PARTITION,
                Offset::Offset(suppression_next),
            )?;
            consumer.assign(&assignment)?;
            let mut next_offset = 0;
            let mut loaded = initial_end == 0;
            // Until this build of the graph has written its first answers.
            let mut fresh = true;
            let mut rebuild = false;
            while !*shutdown.borrow() && !rebuild {
                let mut received = 0;
                let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
                while received < 50_000 {
                    tokio::select! {
                        message = consumer.recv() => match message {
                            Ok(message) if message.topic() == self.suppression_topic => {
                                if message.offset() >= suppression_next {
                                    suppression_next = message.offset() + 1;
                                    rebuild |= self.suppress(message.payload());
                                }
                            }
                            Ok(message) => {
                                received += 1;
                                // tansu may serve the end of a partition again.
                                if message.offset() < next_offset {
                                    continue;
                                }
                                next_offset = message.offset() + 1;
                                self.apply(next_offset, message.payload());
                            }
                            Err(error) => tracing::warn!(%error, "identity-link consumer error"),
                        },
                        () = tokio::time::sleep_until(deadline) => break,
                        _ = shutdown.changed() => break,
                    }
                }
                if rebuild {
                    break;
                }
                if !loaded {
                    if next_offset < initial_end {
                        continue;
                    }
                    loaded = true;
                    tracing::info!(links = next_offset, "identity graph loaded");
                }
                if !self
                    .write_changes(&warehouse, &marks, &mut fresh, &mut shutdown)
                    .await?
                {
                    return Ok(());
                }
                self.written_through.store(next_offset, Ordering::SeqCst);
            }
            if rebuild {
                tracing::info!(
                    links = next_offset,
                    "the suppression list grew: rebuilding the identity graph without the erased identifiers"
                );
                // Not caught up until the rebuilt graph's answers are written.
                self.written_through.store(0, Ordering::SeqCst);
                *lock(&self.graph) = IdentityGraph::new();
                lock(&self.known).clear();
                initial_end = initial_end.max(next_offset);
            }
        }
        Ok(())
    }

    /// Applies the link message before `next_offset`: a set of identifiers,
    /// or a tombstone (no payload), which changes nothing. A set holding a
    /// suppressed identifier is skipped.
    fn apply(&self, next_offset: i64, payload: Option<&[u8]>) {
        self.applied.store(
            u64::try_from(next_offset).unwrap_or_default(),
            Ordering::SeqCst,
        );
        let Some(payload) = payload.filter(|p| !p.is_empty()) else {
            return;
        };
        let key = String::from_utf8_lossy(payload);
        let set = link_set(&key);
        lock(&self.known).insert(self.hash(&key));
        if self.is_suppressed(&set) {
            return;
        }
        lock(&self.graph).link(&set);
    }

    /// Writes the assignments that changed since the last write. `Ok(false)`
    /// when shutdown came while ClickHouse was unreachable.
    ///
    /// A `fresh` graph (just built from the link topic) never saw the
    /// customers its identifiers belonged to before: after a crash or a
    /// restart, links it applied while loading may have merged customers
    /// whose journeys and stats are already written. Its first write
    /// therefore reads the assignments ClickHouse holds for the identifiers
    /// it writes, and marks each customer they name that it replaces.
    async fn write_changes(
        &self,
        warehouse: &Warehouse,
        marks: &MarkProducer,
        fresh: &mut bool,
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<bool> {
        let version = self.version();
        let (rows, mut customers): (Vec<IdentityRow>, BTreeSet<Mark>) = {
            let mut graph = lock(&self.graph);
            let changes = graph.take_changes();
            self.metrics
                .identifiers
                .set(i64::try_from(graph.len()).unwrap_or(i64::MAX));
            let now = now_micros();
            let stored = &self.pseudonymiser;
            // A changed identifier is in the graph, so it has an anchor; the
            // customer id is recomputed from it, keyed when pseudonymised.
            let rows: Vec<IdentityRow> = changes
                .into_iter()
                .filter_map(|(id, _)| {
                    let anchor = graph.anchor_of(&id)?;
                    Some(IdentityRow::new(
                        stored.stored(&id),
                        stored.customer_id(&anchor),
                        stored.stored(&anchor),
                        version,
                        now,
                    ))
                })
                .collect();
            // Every customer that gained or lost an identifier: its journeys
            // and stats are recomputed by its owner once these rows are in.
            let left = graph.take_left_anchors();
            let customers = rows
                .iter()
                .map(|row| row.customer_id.clone())
                .chain(left.iter().map(|anchor| stored.customer_id(anchor)))
                .map(Mark::Customer)
                .collect();
            (rows, customers)
        };
        if rows.is_empty() {
            return Ok(true);
        }
        if *fresh {
            let identifiers: Vec<&str> = rows.iter().map(|r| r.identifier.as_str()).collect();
            let before = retry(
                "clickhouse",
                &self.metrics,
                shutdown,
                || derived::customers_of(warehouse, &identifiers),
                SinkError::is_retryable,
            )
            .await;
            let before = match before {
                None => return Ok(false),
                Some(Ok(before)) => before,
                Some(Err(error)) => bail!("cannot read the identity assignments: {error}"),
            };
            // The unchanged ones are marked already.
            customers.extend(
                rows.iter()
                    .filter_map(|row| before.get(&row.identifier))
                    .map(|customer| Mark::Customer(customer.clone())),
            );
        }
        self.metrics.identity_changes.inc_by(rows.len() as u64);
        let result = retry(
            "clickhouse",
            &self.metrics,
            shutdown,
            || warehouse.insert(&rows),
            SinkError::is_retryable,
        )
        .await;
        match result {
            None => return Ok(false),
            Some(Ok(())) => *fresh = false,
            Some(Err(error)) => bail!("cannot write {} identity assignments: {error}", rows.len()),
        }
        let published = retry(
            "kafka",
            &self.metrics,
            shutdown,
            || marks.publish(&customers),
            |_| true,
        )
        .await;
        Ok(published.is_some())
    }
}

/// The link key (and payload) of a set: its typed identifiers, one a line,
/// in anchor order.
fn link_key(set: &[Identifier]) -> String {
    let typed: Vec<String> = set.iter().map(Identifier::as_string).collect();
    typed.join("\n")
}

/// The identifiers of a link key ([`link_key`]), skipping (with a warning)
/// a line that is not one.
pub fn link_set(key: &str) -> Vec<Identifier> {
    key.lines()
        .filter_map(|line| match Identifier::parse_normal(line) {
            Ok(id) => Some(id),
            Err(error) => {
                tracing::warn!(%error, "skipping an unreadable identity link");
                None
            }
        })
        .collect()
}

/// The end (high watermark) of partition 0 of `topic`. Blocking.
///
/// The end the broker lists can be behind the last message: tansu answers
/// `ListOffsets` with the offset after the first message of the last batch
/// (400 link sets produced at once listed an end of 1), and serves nothing
/// to a fetch from inside a batch. So this reads from the last listed
/// message to the end a fetch reports ([`scan`]), and from the beginning
/// when that fetch finds nothing.
fn end_of(client: &ClientConfig, topic: &str) -> anyhow::Result<i64> {
    // Listed by a consumer of its own: the one that scans takes its end
    // from fetches alone.
    let lister = reader(client)?;
    let (_, listed) = tokio::task::block_in_place(|| {
        lister.fetch_watermarks(topic, LINK_PARTITION, Duration::from_secs(10))
    })
    .with_context(|| format!("cannot read the end of {topic}"))?;
    let last = Offset::Offset((listed - 1).max(0));
    let scanned = scan(
        reader(client)?,
        topic,
        last,
        Duration::from_secs(10),
        |_, _, _| {},
    )?;
    match scanned {
        Some(end) => Ok(end.max(listed)),
        None => read_whole(client, topic, |_, _, _| {}),
    }
}

/// Reads partition 0 of `topic` from its beginning to its end as it is now,
/// handing each message's offset, key and payload (`None`: a tombstone) to
/// `each`; returns the offset after the last message. Blocking.
pub fn read_whole(
    client: &ClientConfig,
    topic: &str,
    each: impl FnMut(i64, Option<&[u8]>, Option<&[u8]>),
) -> anyhow::Result<i64> {
    let patience = Duration::from_secs(300);
    scan(reader(client)?, topic, Offset::Beginning, patience, each)?
        .with_context(|| format!("{topic} was not read to its end within 5 minutes"))
}

fn reader(client: &ClientConfig) -> anyhow::Result<BaseConsumer<ToTheEnd>> {
    client
        .clone()
        .set("group.id", "touchline-identity-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        // The high watermark each fetch carried, reported 10 times a second.
        .set("statistics.interval.ms", "100")
        .create_with_context(ToTheEnd::default())
        .context("cannot create a Kafka consumer")
}

/// The context of a consumer that reads partition 0 of one topic to its end.
#[derive(Default)]
struct ToTheEnd {
    /// The partition's high watermark as the latest fetch carried it (-1
    /// before statistics report one).
    fetched_end: AtomicI64,
}

impl ClientContext for ToTheEnd {
    fn stats(&self, statistics: Statistics) {
        let reported = statistics
            .topics
            .values()
            .filter_map(|topic| topic.partitions.get(&LINK_PARTITION))
            .map(|partition| partition.hi_offset)
            .max();
        if let Some(end) = reported {
            self.fetched_end.store(end, Ordering::SeqCst);
        }
    }

    /// rdkafka hands every consumer error to the context too, whose default
    /// logs it as an error; the end of a partition is what this consumer
    /// waits for.
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
            tracing::error!(%error, reason, "Kafka client error");
        }
    }
}

impl ConsumerContext for ToTheEnd {}

/// Reads partition 0 of `topic` from `from` to its end as a fetch found it
/// once reading began, handing every message to `each`; returns the offset
/// after the last message read, or `None` when the end was not reached
/// within `patience`.
///
/// The end is librdkafka's end-of-partition event or, once a message is
/// read, the high watermark a fetch carried, whichever comes first.
/// librdkafka signals the end only when a fetch finds nothing new, which
/// never happens while the topic is written more often than a fetch waits
/// (`fetch.wait.max.ms`, 500 ms): measured on tansu, a reader of a topic
/// written 100 messages every half second saw no end in 15 s. The high
/// watermark is taken from librdkafka's statistics, the only safe way
/// rdkafka offers to it, and only once a message is read, so that it
/// comes from a fetch, never from the end the broker lists.
fn scan(
    consumer: BaseConsumer<ToTheEnd>,
    topic: &str,
    from: Offset,
    patience: Duration,
    mut each: impl FnMut(i64, Option<&[u8]>, Option<&[u8]>),
) -> anyhow::Result<Option<i64>> {
    tokio::task::block_in_place(|| {
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, LINK_PARTITION, from)?;
        consumer.assign(&assignment)?;
        consumer.context().fetched_end.store(-1, Ordering::SeqCst);
        let mut next = from.to_raw().unwrap_or(0).max(0);
        let mut read = false;
        let mut end = None;
        let started = std::time::Instant::now();
        while started.elapsed() < patience {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) if message.offset() >= next => {
                    next = message.offset() + 1;
                    read = true;
                    each(message.offset(), message.key(), message.payload());
                }
                Some(Ok(_)) | None => {}
                Some(Err(KafkaError::PartitionEOF(_))) => return Ok(Some(next)),
                Some(Err(error)) => tracing::warn!(%error, topic, "Kafka error while reading"),
            }
            if read && end.is_none() {
                let fetched = consumer.context().fetched_end.load(Ordering::SeqCst);
                end = (fetched >= next).then_some(fetched);
            }
            if end.is_some_and(|end| next >= end) {
                return Ok(Some(next));
            }
        }
        Ok(None)
    })
}

/// Creates the compacted topic `topic` with `partitions` partitions unless
/// it exists (Touchline's own topics: links, suppression list, derive marks).
pub(crate) async fn ensure_topic(
    client: &ClientConfig,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client
        .create()
        .context("cannot create a Kafka admin client")?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let compacted = NewTopic::new(topic, partitions, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact");
    let results = admin
        .create_topics([&compacted], &options)
        .await
        .with_context(|| format!("cannot create the topic {topic}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => bail!("cannot create the topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// Locks `mutex`, whether or not a panicking holder poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// A topic written all the while it is read, as the link topic is while
    /// an instance starts beside busy ones, is read to the end it had, not
    /// waited on until the writing stops. Needs the local stack's broker
    /// (`scripts/test` starts it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_topic_being_written_is_read_to_its_end() {
        let brokers = std::env::var("TOUCHLINE_KAFKA_BROKERS")
            .unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", &brokers);
        let topic = format!("t.scan_{}_{}.links", std::process::id(), now_micros());
        ensure_topic(&client, &topic, 1).await.expect("topic");
        let producer = BatchProducer::new(&client, "test").expect("producer");
        // 50 messages every 20 ms, each batch acknowledged before it counts.
        let written = Arc::new(AtomicI64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn({
            let (written, stop, topic) = (written.clone(), stop.clone(), topic.clone());
            async move {
                let links = vec!["link".to_owned(); 50];
                while !stop.load(Ordering::SeqCst) {
                    producer
                        .send_keys(&topic, None, &links)
                        .await
                        .expect("produced");
                    written.fetch_add(50, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        while written.load(Ordering::SeqCst) < 500 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before = written.load(Ordering::SeqCst);
        let mut offsets = Vec::new();
        let scanned = scan(
            reader(&client).expect("reader"),
            &topic,
            Offset::Beginning,
            Duration::from_secs(20),
            |offset, _, _| offsets.push(offset),
        )
        .expect("scan");
        stop.store(true, Ordering::SeqCst);
        writer.await.expect("writer");
        let end = scanned.expect("the topic was not read to an end while it was written");
        assert!(
            end >= before,
            "read to {end}, but {before} were written before"
        );
        let expected: Vec<i64> = (0..end).collect();
        assert_eq!(
            offsets, expected,
            "every message to the end, once, in order"
        );
    }
}
