//! The consumer-group pipeline: Kafka, decode, normalise, ClickHouse.
//!
//! Messages are taken in batches (up to a size, or whatever arrived within the
//! linger time). Each batch becomes timeline rows and dead letters, which are
//! written to ClickHouse; only once ClickHouse has confirmed both are the
//! batch's offsets stored for the next commit (`enable.auto.offset.store =
//! false`). A crash therefore redelivers at most the unconfirmed batches, and
//! the timeline's ReplacingMergeTree absorbs the redelivery.
//!
//! Failures are classified: bad data goes to the dead-letter table and the
//! pipeline goes on; an unreachable registry or ClickHouse is waited out with
//! backoff (nothing is dead-lettered, nothing is committed meanwhile, and
//! consumption pauses because the loop does not fetch while it retries); a
//! refusal that retrying cannot fix stops the pipeline with the reason.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::watch;
use touchline_avro::{Decoder, SchemaRegistry};
use touchline_clickhouse::{
    DeadLetterRow, SinkError, SourcePosition, Table, TimelineRow, Warehouse,
};
use touchline_model::identity::{identifiers, Identifier};
use touchline_model::{normalise, Channel};

use crate::identity::Identity;
use crate::metrics::Metrics;

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
    /// ...or when this long has passed since it started.
    pub batch_linger: Duration,
    /// Exit once every assigned partition has been read to its end.
    pub until_caught_up: bool,
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    pub messages: u64,
    pub events: u64,
    pub dead_letters: u64,
}

/// The pipeline of one instance.
pub struct Pipeline<R> {
    consumer: StreamConsumer,
    decoder: Decoder<R>,
    warehouse: Warehouse,
    identity: Arc<Identity>,
    metrics: Metrics,
    config: PipelineConfig,
    /// The channel of each subscribed topic.
    channels: HashMap<String, Channel>,
    /// Next offset to read of every partition this instance has written.
    processed: HashMap<(String, i32), i64>,
}

/// One batch turned into rows, not yet written.
#[derive(Default)]
struct Prepared {
    timeline: Vec<TimelineRow>,
    dead_letters: Vec<DeadLetterRow>,
    link_sets: Vec<Vec<Identifier>>,
    next_offsets: HashMap<(String, i32), i64>,
    written_by_channel: HashMap<Channel, u64>,
    broker_timestamps_ms: Vec<i64>,
}

impl<R: SchemaRegistry> Pipeline<R> {
    /// Joins the consumer group and subscribes to the four source topics.
    /// `client` holds the connection settings (brokers, TLS, SASL).
    pub fn new(
        config: PipelineConfig,
        client: &ClientConfig,
        decoder: Decoder<R>,
        warehouse: Warehouse,
        identity: Arc<Identity>,
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
            .set("fetch.max.bytes", "16777216");
        let consumer: StreamConsumer = client
            .create()
            .context("cannot create the Kafka consumer")?;
        let channels: HashMap<String, Channel> = Channel::ALL
            .into_iter()
            .map(|c| (format!("{}{}", config.topic_prefix, c.source_topic()), c))
            .collect();
        let topics: Vec<&str> = channels.keys().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .context("cannot subscribe to the source topics")?;
        tracing::info!(group = %config.group_id, ?topics, "subscribed");
        Ok(Pipeline {
            consumer,
            decoder,
            warehouse,
            identity,
            metrics,
            config,
            channels,
            processed: HashMap::new(),
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
        while !*shutdown.borrow() {
            let batch = self.collect(&mut shutdown).await;
            if batch.is_empty() {
                if self.config.until_caught_up && last_check.elapsed() >= Duration::from_secs(1) {
                    last_check = Instant::now();
                    let checked = Instant::now();
                    let caught_up = self.caught_up()?;
                    tracing::debug!(
                        caught_up,
                        check_ms = checked.elapsed().as_millis(),
                        "caught-up check"
                    );
                    caught_up_checks = if caught_up { caught_up_checks + 1 } else { 0 };
                    if caught_up_checks >= 2 {
                        tracing::info!(?totals, "caught up with every assigned partition");
                        break;
                    }
                }
                continue;
            }
            caught_up_checks = 0;
            let started = Instant::now();
            let Some(prepared) = self.prepare(&batch, &mut shutdown).await else {
                break;
            };
            let prepared_in = started.elapsed();
            if !self.write(&prepared, &mut shutdown).await? {
                break;
            }
            self.store_offsets(&prepared)?;
            tracing::debug!(
                messages = batch.len(),
                rows = prepared.timeline.len(),
                dead_letters = prepared.dead_letters.len(),
                prepare_ms = prepared_in.as_millis(),
                total_ms = started.elapsed().as_millis(),
                "batch written"
            );
            totals.messages += batch.len() as u64;
            totals.events += prepared.timeline.len() as u64;
            totals.dead_letters += prepared.dead_letters.len() as u64;
            self.record(&batch, &prepared);
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

    /// Waits for up to a batch of messages, or the linger time.
    async fn collect(&self, shutdown: &mut watch::Receiver<bool>) -> Vec<OwnedMessage> {
        let deadline = tokio::time::Instant::now() + self.config.batch_linger;
        let mut batch = Vec::new();
        while batch.len() < self.config.batch_max_messages {
            tokio::select! {
                received = self.consumer.recv() => match received {
                    Ok(message) => batch.push(message.detach()),
                    Err(error) => {
                        tracing::warn!(%error, "Kafka error while consuming; librdkafka retries");
                        self.metrics.retries.with_label_values(&["kafka"]).inc();
                    }
                },
                () = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.changed() => break,
            }
        }
        batch
    }

    /// Decodes and normalises a batch. `None` when shutdown came while the
    /// registry was unreachable.
    async fn prepare(
        &self,
        batch: &[OwnedMessage],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Prepared> {
        let now_us = now_micros();
        let mut prepared = Prepared::default();
        for message in batch {
            let position = SourcePosition {
                topic: message.topic().to_owned(),
                partition: message.partition(),
                offset: message.offset(),
            };
            let key = (position.topic.clone(), position.partition);
            let next = prepared.next_offsets.entry(key).or_insert(0);
            *next = (*next).max(position.offset + 1);
            if let Some(ms) = message.timestamp().to_millis() {
                prepared.broker_timestamps_ms.push(ms);
            }
            let payload = message.payload().unwrap_or_default();
            let Some(&channel) = self.channels.get(&position.topic) else {
                continue;
            };
            let decoded = retry(
                "registry",
                &self.metrics,
                shutdown,
                || self.decoder.decode(channel, payload),
                |error| error.is_retryable(),
            )
            .await?;
            let outcome = decoded
                .map_err(|e| (e.reason(), e.to_string()))
                .and_then(|record| {
                    let event = normalise(&record, now_us / 1000)
                        .map_err(|e| (e.reason(), e.to_string()))?;
                    Ok((event, identifiers(&record)))
                });
            match outcome {
                Ok((event, ids)) => {
                    for score in &event.dropped_scores {
                        self.metrics
                            .scores_dropped
                            .with_label_values(&[channel.as_str(), score.as_str()])
                            .inc();
                    }
                    *prepared.written_by_channel.entry(channel).or_default() += 1;
                    prepared.timeline.push(TimelineRow::new(
                        &event,
                        Identity::key_of(&ids),
                        &position,
                        now_us,
                    ));
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
        }
        Some(prepared)
    }

    /// Writes a prepared batch: its identity links to Kafka, its rows to
    /// ClickHouse, waiting out either being unavailable. `Ok(false)` when
    /// shutdown came first.
    async fn write(
        &self,
        prepared: &Prepared,
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<bool> {
        let published = retry(
            "kafka",
            &self.metrics,
            shutdown,
            || self.identity.publish(&prepared.link_sets),
            |_| true,
        )
        .await;
        if published.is_none() {
            return Ok(false);
        }
        Ok(self.insert(&prepared.dead_letters, shutdown).await?
            && self.insert(&prepared.timeline, shutdown).await?)
    }

    async fn insert<T: Table>(
        &self,
        rows: &[T],
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<bool> {
        let table = <T as Table>::NAME;
        if rows.is_empty() {
            return Ok(true);
        }
        let started = Instant::now();
        let result = retry(
            "clickhouse",
            &self.metrics,
            shutdown,
            || self.warehouse.insert(rows),
            SinkError::is_retryable,
        )
        .await;
        match result {
            None => Ok(false),
            Some(Err(error)) => bail!("cannot write {} rows to {table}: {error}", rows.len()),
            Some(Ok(())) => {
                self.metrics
                    .insert_seconds
                    .with_label_values(&[table])
                    .observe(started.elapsed().as_secs_f64());
                Ok(true)
            }
        }
    }

    fn store_offsets(&mut self, prepared: &Prepared) -> anyhow::Result<()> {
        let mut list = TopicPartitionList::new();
        for ((topic, partition), next) in &prepared.next_offsets {
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

    fn record(&self, batch: &[OwnedMessage], prepared: &Prepared) {
        for message in batch {
            if let Some(channel) = self.channels.get(message.topic()) {
                self.metrics
                    .consumed
                    .with_label_values(&[channel.as_str()])
                    .inc();
            }
        }
        for (channel, count) in &prepared.written_by_channel {
            self.metrics
                .written
                .with_label_values(&[channel.as_str()])
                .inc_by(*count);
        }
        for row in &prepared.dead_letters {
            self.metrics
                .dead_letters
                .with_label_values(&[row.reason.as_str()])
                .inc();
        }
        let now_ms = now_micros() / 1000;
        for ms in &prepared.broker_timestamps_ms {
            #[allow(clippy::cast_precision_loss)]
            self.metrics
                .latency_seconds
                .observe((now_ms - ms).max(0) as f64 / 1000.0);
        }
        self.metrics.batch_size.observe(batch.len() as f64);
        self.metrics.batches.inc();
        self.metrics
            .cached_schemas
            .set(i64::try_from(self.decoder.cached_schemas()).unwrap_or(i64::MAX));
    }

    /// Whether every partition assigned to this instance has been written up
    /// to its high watermark.
    fn caught_up(&self) -> anyhow::Result<bool> {
        let assignment = self.consumer.assignment()?;
        if assignment.count() == 0 {
            return Ok(false);
        }
        let timeout = Duration::from_secs(5);
        let committed = tokio::task::block_in_place(|| {
            self.consumer.committed_offsets(assignment.clone(), timeout)
        })?;
        // One ListOffsets request for every partition's end (and one for
        // starts): per-partition watermark queries cost a round trip each.
        let mut ends = assignment.clone();
        ends.add_partition(self.identity.topic(), 0);
        let ends = self.list_offsets(ends, Offset::End, timeout)?;
        let starts = self.list_offsets(assignment.clone(), Offset::Beginning, timeout)?;
        let offset = |list: &TopicPartitionList, topic: &str, partition: i32| {
            list.find_partition(topic, partition)
                .and_then(|e| e.offset().to_raw())
                .filter(|o| *o >= 0)
        };
        for element in assignment.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            let Some(high) = offset(&ends, topic, partition) else {
                return Ok(false);
            };
            let written = self.processed.get(&(topic.to_owned(), partition)).copied();
            let next = written
                .max(offset(&committed, topic, partition))
                .or_else(|| offset(&starts, topic, partition))
                .unwrap_or(0);
            if next < high {
                return Ok(false);
            }
        }
        let links_end = offset(&ends, self.identity.topic(), 0).unwrap_or(0);
        Ok(self.identity.written_up_to(links_end))
    }

    /// The earliest or latest offset of each partition in `partitions`.
    fn list_offsets(
        &self,
        mut partitions: TopicPartitionList,
        at: Offset,
        timeout: Duration,
    ) -> anyhow::Result<TopicPartitionList> {
        partitions.set_all_offsets(at)?;
        Ok(tokio::task::block_in_place(|| {
            self.consumer.offsets_for_times(partitions, timeout)
        })?)
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
