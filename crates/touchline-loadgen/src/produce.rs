//! Producing a generated stream to Kafka.
//!
//! Every upstream schema version is registered under its topic's value
//! subject first (`<topic>-value`), so messages carry the registry's ids.
//! Messages are then encoded one by one and produced in order, keyed, with
//! `acks=all`, awaiting every delivery report with a bounded number in
//! flight: at least once, and an error rather than a silent loss when the
//! broker does not acknowledge a message after librdkafka's retries.
//!
//! Production can be paced (`rate_per_s`) and cut short (`duration`). The
//! rate is a ceiling at every moment: a producer that falls behind (the
//! machine was busy) does not catch up in a burst above it, so a consumer
//! measured at that rate never sees more. When it stops early, the first
//! [`ProduceReport::produced`] messages were produced and acknowledged and
//! no others: `generated.prefix(report.produced)` is then the exact truth
//! of what the broker holds.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tokio::time::Instant;
use touchline_avro::registry::{value_subject, HttpRegistry, RegistryError};
use touchline_avro::upstream;
use touchline_model::Channel;

use crate::encode::{Encoder, SchemaIds};
use crate::error::LoadgenError;
use crate::message::UNKNOWN_SCHEMA_ID;
use crate::Generated;

/// Where and how to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct ProduceOptions {
    /// Kafka `bootstrap.servers`, e.g. `127.0.0.1:9092`.
    pub brokers: String,
    /// Schema registry base URL, e.g. `http://127.0.0.1:8081`.
    pub registry_url: String,
    /// Prepended to the four source topic names (`<prefix>cx.chatbot.events`,
    /// ...), as the pipeline's `topic_prefix`, so that tests can share a
    /// broker; schemas are registered under `<prefix><topic>-value`. Empty by
    /// default.
    pub topic_prefix: String,
    /// Messages per second; `None` produces as fast as the broker takes them.
    pub rate_per_s: Option<u32>,
    /// Stop producing new messages after this long; the report says how many
    /// were produced.
    pub duration: Option<Duration>,
    /// Kafka `compression.type`: `none`, `lz4` (default), `gzip`, `zstd`...
    pub compression: String,
    /// Most messages awaiting their delivery report at once.
    pub max_in_flight: usize,
}

impl ProduceOptions {
    /// Defaults: unpaced, no time limit, lz4, 10,000 messages in flight.
    pub fn new(brokers: &str, registry_url: &str) -> Self {
        ProduceOptions {
            brokers: brokers.to_owned(),
            registry_url: registry_url.to_owned(),
            topic_prefix: String::new(),
            rate_per_s: None,
            duration: None,
            compression: "lz4".to_owned(),
            max_in_flight: 10_000,
        }
    }
}

/// How far behind its schedule paced production may fall before the
/// schedule moves on instead of being caught up.
const MAX_BEHIND: Duration = Duration::from_millis(100);

/// The schedule of paced production: message `n` is due `n / rate` seconds
/// after the origin. A producer more than [`MAX_BEHIND`] late moves the
/// origin to now: the messages it missed are produced later at the same
/// rate, never in a burst.
struct Schedule {
    rate: f64,
    origin: Instant,
    origin_index: usize,
}

impl Schedule {
    fn new(rate_per_s: u32, start: Instant) -> Schedule {
        Schedule {
            rate: f64::from(rate_per_s),
            origin: start,
            origin_index: 0,
        }
    }

    /// When message `index` is due, given that it is `now`.
    fn due(&mut self, index: usize, now: Instant) -> Instant {
        let ahead = (index - self.origin_index) as f64 / self.rate;
        let due = self.origin + Duration::from_secs_f64(ahead);
        if now > due + MAX_BEHIND {
            self.origin = now;
            self.origin_index = index;
            now
        } else {
            due
        }
    }
}

/// How far production has got; reported about once a second and at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Messages handed to the producer.
    pub sent: usize,
    /// Messages the broker acknowledged.
    pub acknowledged: usize,
    /// Messages in the generated stream.
    pub total: usize,
    pub elapsed: Duration,
}

/// What was produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ProduceReport {
    /// The first `produced` messages of the stream were produced and
    /// acknowledged, and no other.
    pub produced: usize,
    /// Messages in the generated stream.
    pub total: usize,
    /// True when `duration` ran out before the end of the stream.
    pub stopped_early: bool,
    pub elapsed: Duration,
    /// Messages produced per source topic (without the prefix).
    pub by_topic: BTreeMap<String, usize>,
    /// The registry ids the messages were framed with.
    pub schema_ids: SchemaIds,
}

/// Registers the upstream schemas, then produces `generated.messages` in
/// order; `on_progress` is called about once a second and once at the end.
pub async fn produce(
    generated: &Generated,
    options: &ProduceOptions,
    mut on_progress: impl FnMut(Progress),
) -> Result<ProduceReport, LoadgenError> {
    let prefix = options.topic_prefix.as_str();
    let schema_ids = register_schemas(&options.registry_url, prefix).await?;
    let encoder = Encoder::new(&schema_ids)?;
    let producer = create_producer(options)?;
    check_topics(&producer, &options.brokers, prefix).await?;
    let topics: BTreeMap<&'static str, String> = Channel::ALL
        .into_iter()
        .map(|c| (c.source_topic(), format!("{prefix}{}", c.source_topic())))
        .collect();

    let total = generated.messages.len();
    let start = Instant::now();
    let deadline = options.duration.map(|d| start + d);
    let max_in_flight = options.max_in_flight.max(1);
    let mut in_flight = FuturesUnordered::new();
    let mut acknowledged = 0;
    let mut by_topic: BTreeMap<String, usize> = BTreeMap::new();
    let mut next_report = start + Duration::from_secs(1);
    let mut sent = 0;
    let mut stopped_early = false;
    let progress = |sent, acknowledged| Progress {
        sent,
        acknowledged,
        total,
        elapsed: start.elapsed(),
    };

    let mut schedule = options
        .rate_per_s
        .filter(|rate| *rate > 0)
        .map(|rate| Schedule::new(rate, start));
    for (index, message) in generated.messages.iter().enumerate() {
        let now = Instant::now();
        let due = schedule.as_mut().map(|s| s.due(index, now));
        if deadline.is_some_and(|d| now >= d || due.is_some_and(|due| due >= d)) {
            stopped_early = true;
            break;
        }
        if let Some(due) = due.filter(|due| *due > now) {
            tokio::time::sleep_until(due).await;
        }
        let bytes = encoder.encode(&message.payload)?;
        let topic = message.topic();
        let target = topics.get(topic).map_or(topic, String::as_str);
        loop {
            let record = FutureRecord::to(target).key(&message.key).payload(&bytes);
            match producer.send_result(record) {
                Ok(delivery) => {
                    in_flight.push(acknowledgement(delivery, topic));
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // librdkafka's queue is full: wait for a delivery report.
                    match in_flight.next().await {
                        Some(result) => settle(
                            result,
                            prefix,
                            &options.brokers,
                            &mut acknowledged,
                            &mut by_topic,
                        )?,
                        None => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                Err((source, _)) => {
                    return Err(LoadgenError::Delivery {
                        topic: target.to_owned(),
                        brokers: options.brokers.clone(),
                        produced: acknowledged,
                        source: Box::new(source),
                    })
                }
            }
        }
        sent += 1;
        while in_flight.len() >= max_in_flight {
            if let Some(result) = in_flight.next().await {
                settle(
                    result,
                    prefix,
                    &options.brokers,
                    &mut acknowledged,
                    &mut by_topic,
                )?;
            }
        }
        if Instant::now() >= next_report {
            on_progress(progress(sent, acknowledged));
            next_report += Duration::from_secs(1);
        }
    }
    while let Some(result) = in_flight.next().await {
        settle(
            result,
            prefix,
            &options.brokers,
            &mut acknowledged,
            &mut by_topic,
        )?;
    }
    on_progress(progress(sent, acknowledged));
    tracing::info!(
        produced = sent,
        total,
        stopped_early,
        elapsed_ms = start.elapsed().as_millis() as u64,
        "load generator finished producing"
    );
    Ok(ProduceReport {
        produced: sent,
        total,
        stopped_early,
        elapsed: start.elapsed(),
        by_topic,
        schema_ids,
    })
}

type Acknowledgement = (&'static str, Result<(), KafkaError>);

async fn acknowledgement(delivery: DeliveryFuture, topic: &'static str) -> Acknowledgement {
    let result = match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, _))) => Err(error),
        Err(_canceled) => Err(KafkaError::Canceled),
    };
    (topic, result)
}

fn settle(
    (topic, result): Acknowledgement,
    prefix: &str,
    brokers: &str,
    acknowledged: &mut usize,
    by_topic: &mut BTreeMap<String, usize>,
) -> Result<(), LoadgenError> {
    result.map_err(|source| LoadgenError::Delivery {
        topic: format!("{prefix}{topic}"),
        brokers: brokers.to_owned(),
        produced: *acknowledged,
        source: Box::new(source),
    })?;
    *acknowledged += 1;
    *by_topic.entry(topic.to_owned()).or_default() += 1;
    Ok(())
}

/// Registers every upstream version under `<prefix><topic>-value` of its
/// channel.
async fn register_schemas(url: &str, prefix: &str) -> Result<SchemaIds, LoadgenError> {
    let unreachable = |e: RegistryError| LoadgenError::RegistryUnreachable {
        url: url.to_owned(),
        reason: e.to_string(),
    };
    let registry = HttpRegistry::new(url, None).map_err(unreachable)?;
    registry.ping().await.map_err(unreachable)?;
    let mut ids = SchemaIds::new();
    for schema in upstream::ALL.iter() {
        let subject = value_subject(&format!("{prefix}{}", schema.channel.source_topic()));
        let id = registry
            .register(&subject, schema.text)
            .await
            .map_err(|e| match e {
                RegistryError::Unavailable { .. } => unreachable(e),
                other => LoadgenError::RegistryRejected {
                    url: url.to_owned(),
                    schema: schema.name,
                    subject: subject.clone(),
                    reason: other.to_string(),
                },
            })?;
        if id == UNKNOWN_SCHEMA_ID {
            tracing::warn!(
                schema = schema.name,
                id,
                "the registry gave an upstream schema the id used for unknown-schema messages; \
                 those will decode instead of being dead-lettered"
            );
        }
        tracing::debug!(schema = schema.name, %subject, id, "registered upstream schema");
        ids.insert(schema.name, id);
    }
    Ok(ids)
}

fn create_producer(options: &ProduceOptions) -> Result<FutureProducer, LoadgenError> {
    ClientConfig::new()
        .set("bootstrap.servers", &options.brokers)
        .set("linger.ms", "5")
        .set("compression.type", &options.compression)
        .set("acks", "all")
        // Idempotence would need the broker's producer-id support; at least
        // once is the contract (SPEC.md §1) and duplicates are expected.
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "60000")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .map_err(|source| LoadgenError::ProducerConfig {
            brokers: options.brokers.clone(),
            source: Box::new(source),
        })
}

/// Fails fast when the broker is down or a source topic is missing, instead
/// of waiting for every message to time out.
async fn check_topics(
    producer: &FutureProducer,
    brokers: &str,
    prefix: &str,
) -> Result<(), LoadgenError> {
    let client = producer.clone();
    let topics = tokio::task::spawn_blocking(move || {
        client
            .client()
            .fetch_metadata(None, Duration::from_secs(10))
            .map(|metadata| {
                metadata
                    .topics()
                    .iter()
                    .filter(|t| t.error().is_none())
                    .map(|t| t.name().to_owned())
                    .collect::<Vec<_>>()
            })
    })
    .await
    .map_err(|e| LoadgenError::BrokerUnreachable {
        brokers: brokers.to_owned(),
        reason: e.to_string(),
    })?
    .map_err(|e| LoadgenError::BrokerUnreachable {
        brokers: brokers.to_owned(),
        reason: e.to_string(),
    })?;
    for channel in Channel::ALL {
        let topic = format!("{prefix}{}", channel.source_topic());
        if !topics.contains(&topic) {
            return Err(LoadgenError::MissingTopic {
                topic,
                brokers: brokers.to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_producer_moves_its_schedule_on_instead_of_bursting() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut schedule = Schedule::new(1_000, start);
        assert_eq!(schedule.due(0, start), start);
        assert_eq!(schedule.due(10, start + ms(5)), start + ms(10));
        // 50 ms late: still caught up, within MAX_BEHIND.
        assert_eq!(schedule.due(20, start + ms(70)), start + ms(20));
        // 200 ms late: due now, and the next messages follow at the rate
        // from here rather than all at once.
        let late = start + ms(700);
        assert_eq!(schedule.due(500, late), late);
        assert_eq!(schedule.due(501, late), late + ms(1));
        assert_eq!(schedule.due(600, late + ms(50)), late + ms(100));
    }
}
