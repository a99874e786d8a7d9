//! Readiness (`/readyz`) and consumer lag.
//!
//! A probe task checks, every few seconds, the three services `touchline run`
//! needs: Kafka (metadata of the four source topics), the schema registry
//! (`GET /subjects`) and ClickHouse (`SELECT 1`). `/readyz` answers from the
//! last round, so a Kubernetes probe never waits on a slow dependency. The
//! same round reads the consumer group's committed offsets and the partitions'
//! high watermarks and sets `touchline_consumer_lag_messages`: the lag of the
//! whole group, which every instance reports for every partition (take the
//! `max` across instances).
//!
//! `/healthz` only says that the process serves HTTP; it never depends on
//! another service, so an outage of Kafka or ClickHouse makes instances
//! unready, not restarted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;
use tokio::sync::watch;
use touchline_avro::HttpRegistry;
use touchline_clickhouse::Warehouse;

use crate::metrics::Metrics;

/// Time between two probe rounds.
const INTERVAL: Duration = Duration::from_secs(5);
/// Longest wait for one answer of a dependency.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The dependencies `/readyz` reports, in its order.
pub const KAFKA: &str = "kafka";
pub const SCHEMA_REGISTRY: &str = "schema_registry";
pub const CLICKHOUSE: &str = "clickhouse";
const DEPENDENCIES: [&str; 3] = [KAFKA, SCHEMA_REGISTRY, CLICKHOUSE];

/// What the last probe round found, shared with the HTTP handlers.
#[derive(Clone, Default)]
pub struct Readiness {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// Per dependency: `Ok` or why it is not ready; absent until checked.
    checks: BTreeMap<&'static str, Result<(), String>>,
    stopping: bool,
}

impl Readiness {
    pub fn new() -> Readiness {
        Readiness::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the outcome of one dependency's check; whether it differs
    /// from the previous one.
    pub fn set(&self, dependency: &'static str, outcome: Result<(), String>) -> bool {
        let previous = self.lock().checks.insert(dependency, outcome.clone());
        previous != Some(outcome)
    }

    /// From now on, not ready: the process is shutting down.
    pub fn stopping(&self) {
        self.lock().stopping = true;
    }

    /// Whether the process is ready, and the JSON body of `/readyz`:
    /// `{"ready": bool, "not_ready": [names], "checks": {name: "ok" | why}}`.
    pub fn report(&self) -> (bool, serde_json::Value) {
        let state = self.lock();
        let mut not_ready = Vec::new();
        let mut checks = serde_json::Map::new();
        for dependency in DEPENDENCIES {
            let status = match state.checks.get(dependency) {
                Some(Ok(())) => "ok".to_owned(),
                Some(Err(why)) => why.clone(),
                None => "not checked yet".to_owned(),
            };
            if status != "ok" {
                not_ready.push(dependency);
            }
            checks.insert(dependency.to_owned(), status.into());
        }
        if state.stopping {
            not_ready.push("shutting_down");
        }
        let ready = not_ready.is_empty();
        let body = json!({ "ready": ready, "not_ready": not_ready, "checks": checks });
        (ready, body)
    }
}

/// Checks the dependencies of `touchline run` and measures consumer lag.
pub struct Probe {
    /// A consumer of the pipeline's group that never subscribes: it only
    /// reads metadata, watermarks and the group's committed offsets.
    consumer: Arc<BaseConsumer>,
    topics: Vec<String>,
    registry: HttpRegistry,
    warehouse: Warehouse,
    metrics: Metrics,
    readiness: Readiness,
}

impl Probe {
    pub fn new(
        client: &ClientConfig,
        group_id: &str,
        topics: Vec<String>,
        registry: HttpRegistry,
        warehouse: Warehouse,
        metrics: Metrics,
        readiness: Readiness,
    ) -> anyhow::Result<Probe> {
        let consumer: BaseConsumer = client
            .clone()
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .create()
            .context("cannot create the Kafka client that measures consumer lag")?;
        Ok(Probe {
            consumer: Arc::new(consumer),
            topics,
            registry,
            warehouse,
            metrics,
            readiness,
        })
    }

    /// Probes every [`INTERVAL`] until `stop` turns true, which also cuts a
    /// round short.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut lag_labels = BTreeSet::new();
        loop {
            tokio::select! {
                () = self.round(&mut lag_labels) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            tokio::select! {
                () = tokio::time::sleep(INTERVAL) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }

    async fn round(&self, lag_labels: &mut BTreeSet<(String, String)>) {
        let (kafka, registry, clickhouse) =
            tokio::join!(self.kafka(), self.registry(), self.clickhouse());
        let kafka = kafka.map(|lags| self.record_lag(lags, lag_labels));
        for (dependency, outcome) in [
            (KAFKA, kafka),
            (SCHEMA_REGISTRY, registry),
            (CLICKHOUSE, clickhouse),
        ] {
            self.metrics
                .dependency_up
                .with_label_values(&[dependency])
                .set(i64::from(outcome.is_ok()));
            let failure = outcome.as_ref().err().cloned();
            if self.readiness.set(dependency, outcome) {
                match failure {
                    Some(why) => tracing::warn!(dependency, error = %why, "not ready"),
                    None => tracing::info!(dependency, "ready"),
                }
            }
        }
    }

    /// Sets the lag gauges, and removes those of partitions that are gone.
    fn record_lag(&self, lags: Vec<PartitionLag>, labels: &mut BTreeSet<(String, String)>) {
        let mut seen = BTreeSet::new();
        for lag in lags {
            let key = (lag.topic, lag.partition.to_string());
            if let Some(messages) = lag.messages {
                self.metrics
                    .consumer_lag
                    .with_label_values(&[key.0.as_str(), key.1.as_str()])
                    .set(messages);
                seen.insert(key);
            }
        }
        for (topic, partition) in labels.difference(&seen) {
            let _ = self
                .metrics
                .consumer_lag
                .remove_label_values(&[topic.as_str(), partition.as_str()]);
        }
        *labels = seen;
    }

    /// Ready when the broker gives the metadata of every source topic. Also
    /// measures the lag of each of their partitions.
    async fn kafka(&self) -> Result<Vec<PartitionLag>, String> {
        let consumer = Arc::clone(&self.consumer);
        let topics = self.topics.clone();
        tokio::task::spawn_blocking(move || kafka_lag(&consumer, &topics))
            .await
            .unwrap_or_else(|error| Err(format!("the Kafka check panicked: {error}")))
    }

    async fn registry(&self) -> Result<(), String> {
        match tokio::time::timeout(TIMEOUT, self.registry.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("{} does not answer: {error}", self.registry.url())),
            Err(_) => Err(format!(
                "{} did not answer within {} s",
                self.registry.url(),
                TIMEOUT.as_secs()
            )),
        }
    }

    async fn clickhouse(&self) -> Result<(), String> {
        match tokio::time::timeout(TIMEOUT, self.warehouse.execute("SELECT 1")).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("SELECT 1 failed: {error}")),
            Err(_) => Err(format!(
                "SELECT 1 did not answer within {} s",
                TIMEOUT.as_secs()
            )),
        }
    }
}

/// The lag of one source partition; `None` when its offsets could not be
/// read this round.
struct PartitionLag {
    topic: String,
    partition: i32,
    messages: Option<i64>,
}

/// Fetches the metadata of `topics` (the readiness check), then the group's
/// committed offsets and each partition's watermarks. Blocking.
fn kafka_lag(consumer: &BaseConsumer, topics: &[String]) -> Result<Vec<PartitionLag>, String> {
    // This consumer never subscribes, but librdkafka still queues its events
    // (errors, logs) until polled: drain them so that they cannot pile up.
    for _ in 0..1000 {
        if consumer.poll(Duration::ZERO).is_none() {
            break;
        }
    }
    let mut partitions = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(|error| format!("cannot fetch the metadata of topic {topic}: {error}"))?;
        let found = metadata.topics().iter().find(|t| t.name() == topic);
        match found {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                for partition in t.partitions() {
                    partitions.add_partition(topic, partition.id());
                }
            }
            Some(t) => {
                return Err(match t.error() {
                    Some(error) => format!(
                        "topic {topic}: {}; create it, or check kafka.topic_prefix",
                        rdkafka::types::RDKafkaErrorCode::from(error)
                    ),
                    None => format!("topic {topic} has no partitions"),
                })
            }
            None => return Err(format!("the broker does not know topic {topic}")),
        }
    }
    let committed = match consumer.committed_offsets(partitions.clone(), TIMEOUT) {
        Ok(committed) => Some(committed),
        Err(error) => {
            tracing::debug!(%error, "cannot read the consumer group's committed offsets");
            None
        }
    };
    let lags = partitions
        .elements()
        .into_iter()
        .map(|element| {
            let (topic, partition) = (element.topic(), element.partition());
            let committed = committed
                .as_ref()
                .and_then(|c| c.find_partition(topic, partition))
                .map(|e| e.offset());
            let messages = match (
                committed,
                consumer.fetch_watermarks(topic, partition, TIMEOUT),
            ) {
                (Some(committed), Ok((low, high))) => Some(match committed {
                    Offset::Offset(next) if next >= low => high - next,
                    // Nothing committed yet (or committed before what the
                    // broker still holds): everything retained is unread.
                    _ => high - low,
                }),
                (None, _) | (_, Err(_)) => None,
            };
            PartitionLag {
                topic: topic.to_owned(),
                partition,
                messages: messages.map(|m| m.max(0)),
            }
        })
        .collect();
    Ok(lags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_ready_until_every_dependency_answered() {
        let readiness = Readiness::new();
        let (ready, body) = readiness.report();
        assert!(!ready);
        assert_eq!(
            body["not_ready"],
            json!(["kafka", "schema_registry", "clickhouse"])
        );
        assert_eq!(body["checks"]["kafka"], "not checked yet");

        readiness.set(KAFKA, Ok(()));
        readiness.set(SCHEMA_REGISTRY, Ok(()));
        readiness.set(
            CLICKHOUSE,
            Err("SELECT 1 failed: connection refused".into()),
        );
        let (ready, body) = readiness.report();
        assert!(!ready);
        assert_eq!(body["not_ready"], json!(["clickhouse"]));
        assert_eq!(body["checks"]["kafka"], "ok");
        assert_eq!(
            body["checks"]["clickhouse"],
            "SELECT 1 failed: connection refused"
        );

        readiness.set(CLICKHOUSE, Ok(()));
        let (ready, body) = readiness.report();
        assert!(ready, "{body}");
        assert_eq!(body["not_ready"], json!([]));

        readiness.stopping();
        let (ready, body) = readiness.report();
        assert!(!ready);
        assert_eq!(body["not_ready"], json!(["shutting_down"]));
    }
}
