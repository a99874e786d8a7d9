//! Producing a batch of records and waiting until the broker has them all.
//!
//! rdkafka's `FutureProducer` gives every record a future of its own: a
//! channel, and a wake-up of the waiting task for each delivery report. The
//! pipeline produces its derive marks and identity links in batches of up to
//! a hundred thousand, and only ever waits for a whole batch, so here the
//! records of a batch share one count instead: each delivery report counts it
//! down, and the last one wakes the task waiting for the batch. The reports
//! also say where each record landed (partition and offset), which the derive
//! rounds need to recompute at once what their own marks announce.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Message};
use tokio::sync::Notify;

/// How long a record may wait for room in librdkafka's queue before its
/// batch fails: the queue timeout the marks and links had before, with
/// `FutureProducer::send`.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// A producer that sends batches and waits for each as a whole.
#[derive(Clone)]
pub struct BatchProducer {
    producer: ThreadedProducer<Reports>,
}

/// Where a record landed: its partition and offset.
pub type Placement = (i32, i64);

/// Counts delivery reports against the batch each record belongs to.
struct Reports;

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    /// The record's batch and its index in it.
    type DeliveryOpaque = Box<(Arc<Batch>, usize)>;

    fn delivery(&self, result: &DeliveryResult<'_>, record: Self::DeliveryOpaque) {
        let (batch, index) = *record;
        match result {
            Ok(message) => batch.place(index, (message.partition(), message.offset())),
            Err((error, _)) => batch.fail(error.clone()),
        }
        batch.settle();
    }
}

/// One batch: how many of its records (and whether its sending) are still
/// to be settled, where each landed, and its first error.
struct Batch {
    unsettled: AtomicUsize,
    placements: Mutex<Vec<Placement>>,
    error: Mutex<Option<KafkaError>>,
    settled: Notify,
}

impl Batch {
    fn fail(&self, error: KafkaError) {
        let mut first = self.error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(error);
    }

    fn place(&self, index: usize, placement: Placement) {
        let mut placements = self.placements.lock().unwrap_or_else(|e| e.into_inner());
        placements[index] = placement;
    }

    fn failed(&self) -> bool {
        self.error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// One record (or the sending itself) settled; the last wakes the
    /// waiter, now or, through `Notify`'s permit, once it waits.
    fn settle(&self) {
        if self.unsettled.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.settled.notify_one();
        }
    }
}

impl BatchProducer {
    /// A producer with `client`'s connection settings, waiting for every
    /// in-sync replica (`acks=all`) and lingering 5 ms to fill its requests.
    /// `what` names it in errors.
    pub fn new(client: &ClientConfig, what: &str) -> anyhow::Result<BatchProducer> {
        let config = client
            .clone()
            .set("acks", "all")
            .set("linger.ms", "5")
            .clone();
        let producer = ThreadedProducer::from_config_and_context(&config, Reports)
            .with_context(|| format!("cannot create the {what} producer"))?;
        Ok(BatchProducer { producer })
    }

    /// Produces a record for each of `keys`, the key also its payload (as
    /// on the compacted mark and link topics), to `topic` (to `partition`,
    /// or by key when `None`), and waits until the broker has acknowledged
    /// them all; returns where each landed, in the order of `keys`. On the
    /// first error no more are sent and the batch fails once the records
    /// already sent are settled; some of them may have been written, which
    /// the callers' retries absorb.
    pub async fn send_keys(
        &self,
        topic: &str,
        partition: Option<i32>,
        keys: &[String],
    ) -> Result<Vec<Placement>, KafkaError> {
        let batch = Arc::new(Batch {
            unsettled: AtomicUsize::new(1),
            placements: Mutex::new(vec![(-1, -1); keys.len()]),
            error: Mutex::new(None),
            settled: Notify::new(),
        });
        for (index, key) in keys.iter().enumerate() {
            let mut record =
                BaseRecord::with_opaque_to(topic, Box::new((Arc::clone(&batch), index)))
                    .key(key.as_bytes())
                    .payload(key.as_bytes());
            if let Some(partition) = partition {
                record = record.partition(partition);
            }
            batch.unsettled.fetch_add(1, Ordering::AcqRel);
            let since = Instant::now();
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if since.elapsed() < QUEUE_TIMEOUT =>
                    {
                        // The polling thread serves delivery reports, which
                        // make room.
                        record = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((error, _)) => {
                        batch.fail(error);
                        batch.settle();
                        break;
                    }
                }
            }
            if batch.failed() {
                break;
            }
        }
        batch.settle();
        batch.settled.notified().await;
        let error = batch.error.lock().unwrap_or_else(|e| e.into_inner()).take();
        match error {
            Some(error) => Err(error),
            None => Ok(std::mem::take(
                &mut *batch.placements.lock().unwrap_or_else(|e| e.into_inner()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{ensure_topic, read_whole};
    use crate::pipeline::now_micros;

    /// The local stack's broker (`scripts/test` starts it).
    fn client() -> ClientConfig {
        let brokers = std::env::var("TOUCHLINE_KAFKA_BROKERS")
            .unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", &brokers);
        client
    }

    async fn topic(name: &str) -> String {
        let topic = format!("t.produce_{}_{}.{name}", std::process::id(), now_micros());
        ensure_topic(&client(), &topic, 1).await.expect("topic");
        topic
    }

    /// A batch ten times larger than librdkafka's queue waits for room
    /// and is all on the broker, in order, once `send_keys` returns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_larger_than_the_queue_is_all_written_in_order() {
        let topic = topic("queue").await;
        let mut small = client();
        small.set("queue.buffering.max.messages", "100");
        let producer = BatchProducer::new(&small, "test").expect("producer");
        let keys: Vec<String> = (0..1_000).map(|i| format!("mark-{i}")).collect();
        let placements = producer
            .send_keys(&topic, Some(0), &keys)
            .await
            .expect("produced");
        // Each record's placement, in the order of the keys: a fresh
        // one-partition topic numbers them from 0.
        let expected: Vec<Placement> = (0..1_000).map(|offset| (0, offset)).collect();
        assert_eq!(placements, expected);
        let mut read = Vec::new();
        tokio::task::block_in_place(|| {
            read_whole(&client(), &topic, |_, key, payload| {
                assert_eq!(key, payload);
                read.push(String::from_utf8(key.expect("key").to_vec()).expect("utf-8"));
            })
        })
        .expect("read");
        assert_eq!(read, keys);
    }

    /// A record the broker cannot take fails its batch with the broker's
    /// reason; the batch does not wait forever.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_that_cannot_be_written_fails_its_batch() {
        let topic = topic("failing").await;
        let producer = BatchProducer::new(&client(), "test").expect("producer");
        let keys = vec!["a".to_owned(), "b".to_owned()];
        let sent = tokio::time::timeout(
            Duration::from_secs(60),
            producer.send_keys(&topic, Some(7), &keys),
        )
        .await
        .expect("settled within a minute");
        let error = sent.expect_err("partition 7 of a one-partition topic does not exist");
        assert!(
            error.to_string().to_lowercase().contains("partition"),
            "{error}"
        );
        // The producer stays usable.
        producer
            .send_keys(&topic, Some(0), &keys)
            .await
            .expect("produced");
    }
}
