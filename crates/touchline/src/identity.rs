//! Identity resolution across instances: the link log and this instance's
//! copy of the identity graph (design: `docs/design/20261122_identity.md`).
//!
//! The pipeline hands each batch's link sets (an event's identifiers) to
//! [`Identity::publish`], which produces the sets this instance has not seen
//! to the link topic. [`Identity::follow`] reads the whole link topic, applies
//! every set to the graph, and writes the identifiers whose customer changed
//! to ClickHouse, versioned by how many links the graph has applied.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::watch;
use touchline_clickhouse::{IdentityRow, SinkError, Warehouse};
use touchline_model::identity::{Identifier, IdentityGraph};
use touchline_model::Pseudonymiser;

use crate::metrics::Metrics;
use crate::pipeline::{now_micros, retry};

/// The link topic's name, after the topic prefix.
pub const LINK_TOPIC: &str = "touchline.identity.links";
/// The link topic has one partition: every instance reads all of it, and one
/// partition gives every instance the same order.
const LINK_PARTITION: i32 = 0;

/// This instance's identity state, shared by the pipeline and the follower.
pub struct Identity {
    topic: String,
    producer: FutureProducer,
    /// Every identifier and customer id reaches ClickHouse through it.
    pseudonymiser: Pseudonymiser,
    graph: Mutex<IdentityGraph>,
    /// Hashes of the link sets applied or produced by this instance.
    known: Mutex<HashSet<u64>>,
    hasher: std::collections::hash_map::RandomState,
    /// Link messages applied to the graph.
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
        ensure_topic(client, &topic).await?;
        let producer: FutureProducer = client
            .clone()
            .set("acks", "all")
            .set("linger.ms", "5")
            .create()
            .context("cannot create the identity-link producer")?;
        Ok(Arc::new(Identity {
            topic,
            producer,
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
        let deliveries = fresh.iter().map(|key| {
            self.producer.send(
                FutureRecord::to(&self.topic)
                    .partition(LINK_PARTITION)
                    .key(key.as_bytes())
                    .payload(key.as_bytes()),
                Duration::from_secs(30),
            )
        });
        for delivery in futures::future::join_all(deliveries).await {
            if let Err((error, _)) = delivery {
                // Forget this batch's sets so that the retry sends them again.
                let mut known = lock(&self.known);
                for key in &fresh {
                    known.remove(&self.hash(key));
                }
                bail!("cannot produce identity links to {}: {error}", self.topic);
            }
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

    /// How identifiers and customer ids are stored: the one conversion every
    /// writer of identifiers uses.
    pub fn pseudonymiser(&self) -> &Pseudonymiser {
        &self.pseudonymiser
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

    /// Reads the link topic from its beginning for as long as the process
    /// runs: applies every link set to the graph and writes the changed
    /// assignments. The first write waits until the topic's existing links
    /// are all applied, so a restart never writes a partial graph's answers.
    pub async fn follow(
        self: Arc<Self>,
        client: ClientConfig,
        warehouse: Warehouse,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let consumer: StreamConsumer = client
            .clone()
            .set("group.id", "touchline-identity-follower")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .create()
            .context("cannot create the identity-link consumer")?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&self.topic, LINK_PARTITION, Offset::Beginning)?;
        consumer.assign(&assignment)?;
        let (_, initial_end) = tokio::task::block_in_place(|| {
            consumer.fetch_watermarks(&self.topic, LINK_PARTITION, Duration::from_secs(10))
        })
        .with_context(|| format!("cannot read the end of {}", self.topic))?;
        let mut next_offset = 0;
        let mut loaded = initial_end == 0;
        tracing::info!(topic = %self.topic, links = initial_end, "loading the identity graph");
        while !*shutdown.borrow() {
            let mut received = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
            while received < 50_000 {
                tokio::select! {
                    message = consumer.recv() => match message {
                        Ok(message) => {
                            received += 1;
                            // tansu may serve the end of a partition again.
                            if message.offset() < next_offset {
                                continue;
                            }
                            next_offset = message.offset() + 1;
                            self.apply(message.payload().unwrap_or_default());
                        }
                        Err(error) => tracing::warn!(%error, "identity-link consumer error"),
                    },
                    () = tokio::time::sleep_until(deadline) => break,
                    _ = shutdown.changed() => break,
                }
            }
            if !loaded {
                if next_offset < initial_end {
                    continue;
                }
                loaded = true;
                tracing::info!(links = next_offset, "identity graph loaded");
            }
            if !self.write_changes(&warehouse, &mut shutdown).await? {
                break;
            }
            self.written_through.store(next_offset, Ordering::SeqCst);
        }
        Ok(())
    }

    fn apply(&self, payload: &[u8]) {
        let key = String::from_utf8_lossy(payload);
        let set: Vec<Identifier> = key
            .lines()
            .filter_map(|line| match Identifier::parse(line) {
                Ok(id) => Some(id),
                Err(error) => {
                    tracing::warn!(%error, "skipping an unreadable identity link");
                    None
                }
            })
            .collect();
        lock(&self.known).insert(self.hash(&key));
        lock(&self.graph).link(&set);
        self.applied.fetch_add(1, Ordering::SeqCst);
    }

    /// Writes the assignments that changed since the last write. `Ok(false)`
    /// when shutdown came while ClickHouse was unreachable.
    async fn write_changes(
        &self,
        warehouse: &Warehouse,
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<bool> {
        let version = self.applied.load(Ordering::SeqCst);
        let rows: Vec<IdentityRow> = {
            let mut graph = lock(&self.graph);
            let changes = graph.take_changes();
            self.metrics
                .identifiers
                .set(i64::try_from(graph.len()).unwrap_or(i64::MAX));
            let now = now_micros();
            let stored = &self.pseudonymiser;
            // A changed identifier is in the graph, so it has an anchor; the
            // customer id is recomputed from it, keyed when pseudonymised.
            changes
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
                .collect()
        };
        if rows.is_empty() {
            return Ok(true);
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
            None => Ok(false),
            Some(Ok(())) => Ok(true),
            Some(Err(error)) => bail!("cannot write {} identity assignments: {error}", rows.len()),
        }
    }
}

/// The link key (and payload) of a set: its typed identifiers, one a line,
/// in anchor order.
fn link_key(set: &[Identifier]) -> String {
    let typed: Vec<String> = set.iter().map(Identifier::as_string).collect();
    typed.join("\n")
}

/// Creates the compacted link topic unless it exists.
async fn ensure_topic(client: &ClientConfig, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client
        .create()
        .context("cannot create a Kafka admin client")?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let compacted =
        NewTopic::new(topic, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let results = admin
        .create_topics([&compacted], &options)
        .await
        .with_context(|| format!("cannot create the identity-link topic {topic}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => bail!("cannot create the identity-link topic {topic}: {code}"),
        }
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
