//! `touchline replay`: sends dead letters back to their topics once their
//! cause is fixed (a schema registered, a size limit raised, a producer bug
//! repaired), so that the pipeline reads them again like any other message.
//!
//! Each letter is produced with its original key and bytes to the topic it was
//! read from; only when the broker has acknowledged a chunk is that chunk
//! deleted from the dead-letter table. A crash in between replays a chunk
//! twice, which the timeline absorbs (it is keyed by event), and a message
//! whose cause is not fixed simply becomes a dead letter again.

use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::{FutureProducer, FutureRecord};
use touchline_clickhouse::dead_letters::{self, DeadLetter};
use touchline_clickhouse::Warehouse;

use crate::config::Config;
use crate::progress::Bar;

/// Letters produced, then forgotten, per round.
const CHUNK: usize = 5_000;

/// Replays the dead letters with `reason` (all when `None`), at most `limit`.
/// Returns how many were replayed.
pub async fn replay(
    config: &Config,
    warehouse: &Warehouse,
    reason: Option<&str>,
    limit: u64,
) -> anyhow::Result<u64> {
    let letters = dead_letters::pending(warehouse, reason, limit).await?;
    if letters.is_empty() {
        return Ok(0);
    }
    let producer: FutureProducer = config
        .kafka
        .client()?
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .context("cannot create the Kafka producer for the replay")?;
    let mut progress = Bar::new("replaying", letters.len() as u64);
    let mut done = 0;
    for chunk in letters.chunks(CHUNK) {
        produce(&producer, chunk).await?;
        dead_letters::forget(warehouse, chunk).await?;
        done += chunk.len() as u64;
        progress.update(done);
    }
    progress.finish();
    Ok(done)
}

async fn produce(producer: &FutureProducer, letters: &[DeadLetter]) -> anyhow::Result<()> {
    let deliveries = letters.iter().map(|letter| {
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&letter.topic).payload(&letter.payload[..]);
        if !letter.key.is_empty() {
            record = record.key(&letter.key[..]);
        }
        producer.send(record, Duration::from_secs(30))
    });
    for (letter, delivery) in letters
        .iter()
        .zip(futures::future::join_all(deliveries).await)
    {
        if let Err((error, _)) = delivery {
            anyhow::bail!(
                "cannot produce the dead letter {}/{}/{} back to Kafka: {error}; nothing of \
                 this chunk was removed from the dead-letter table, run the replay again",
                letter.topic,
                letter.partition,
                letter.offset
            );
        }
    }
    Ok(())
}
