//! `touchline forget IDENTIFIER`: erase one customer (design:
//! `docs/design/20261122_privacy.md`).
//!
//! 1. Rebuild the identity graph from the link topic (as an instance does,
//!    without what the suppression list already erased) and find the
//!    customer of IDENTIFIER and every identifier of that customer.
//! 2. Put the fingerprints of those identifiers on the suppression list and
//!    produce a tombstone for every link set that holds one of them, so that
//!    compaction removes the sets from the link topic. Running instances read
//!    the list, drop the customer's later events (counted in
//!    `touchline_events_suppressed_total`) and rebuild their graphs without
//!    those identifiers.
//! 3. After `settle` (time for the instances to read the list and finish the
//!    batch in hand), delete the customer's rows from every table of
//!    `touchline_clickhouse::erasure::TARGETS`, then check that none is left,
//!    deleting again the stragglers of a batch that was in flight.
//! 4. Mark the days the customer had contacts, scores or journeys on, so
//!    that their owners recompute the daily aggregates without them.
//!
//! Nothing here logs or prints an identifier, a stored form or a customer id.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::producer::{FutureProducer, FutureRecord};
use touchline_clickhouse::erasure::{self, Erased, Subject};
use touchline_clickhouse::Warehouse;
use touchline_model::identity::{Identifier, IdentityGraph};
use touchline_model::privacy::raw_needles;
use touchline_model::{Fingerprint, Pseudonymiser};

use crate::config::Config;
use crate::derive::{Mark, MarkProducer};
use crate::identity::{ensure_topic, link_set, read_whole, LINK_TOPIC, SUPPRESSION_TOPIC};

/// How long ClickHouse may take to apply the deletes of one round.
const MUTATION_TIMEOUT: Duration = Duration::from_secs(300);
/// Rounds of delete-and-check before giving up.
const ROUNDS: usize = 3;

/// What `forget` did.
#[derive(Debug)]
pub struct Report {
    /// Identifiers of the customer, all suppressed.
    pub identifiers: usize,
    /// Link sets tombstoned.
    pub link_sets: usize,
    /// Contacts of the customer whose rows were deleted too.
    pub contacts: usize,
    /// Rows found per table before the first delete.
    pub erased: Vec<Erased>,
    /// Days whose aggregates are recomputed.
    pub days: usize,
}

/// Erases the customer of `identifier`.
pub async fn forget(
    config: &Config,
    warehouse: &Warehouse,
    identifier: &Identifier,
    settle: Duration,
) -> anyhow::Result<Report> {
    let pseudonymiser = config.privacy.pseudonymiser()?;
    let client = config.kafka.client()?;
    let prefix = &config.kafka.topic_prefix;
    let link_topic = format!("{prefix}{LINK_TOPIC}");
    let suppression_topic = format!("{prefix}{SUPPRESSION_TOPIC}");
    ensure_topic(&client, &link_topic, 1).await?;
    ensure_topic(&client, &suppression_topic, 1).await?;

    // 1. The customer, as every instance's graph has it.
    let mut suppressed: HashSet<Fingerprint> = HashSet::new();
    read_whole(&client, &suppression_topic, |_, _, payload| {
        if let Some(print) = payload
            .and_then(|p| std::str::from_utf8(p).ok())
            .and_then(Fingerprint::parse_hex)
        {
            suppressed.insert(print);
        }
    })?;
    let mut latest: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
    read_whole(&client, &link_topic, |_, key, payload| {
        if let Some(key) = key {
            latest.insert(key.to_vec(), payload.map(<[u8]>::to_vec));
        }
    })?;
    let sets: Vec<(Vec<u8>, Vec<Identifier>)> = latest
        .into_iter()
        .filter_map(|(key, payload)| {
            let payload = payload.filter(|p| !p.is_empty())?;
            Some((key, link_set(&String::from_utf8_lossy(&payload))))
        })
        .collect();
    let members = customer_of(identifier, &sets, &suppressed, &pseudonymiser);

    // 2. The suppression list and the link topic's tombstones.
    let member_set: HashSet<&Identifier> = members.iter().collect();
    let tombstoned: Vec<&Vec<u8>> = sets
        .iter()
        .filter(|(_, ids)| ids.iter().any(|id| member_set.contains(id)))
        .map(|(key, _)| key)
        .collect();
    let producer: FutureProducer = client
        .clone()
        .set("acks", "all")
        .create()
        .context("cannot create the Kafka producer for the suppression list")?;
    let prints: Vec<String> = members
        .iter()
        .map(|id| pseudonymiser.fingerprint(id).to_string())
        .collect();
    let suppressions = prints.iter().map(|print| {
        producer.send(
            FutureRecord::to(&suppression_topic)
                .partition(0)
                .key(print.as_bytes())
                .payload(print.as_bytes()),
            Duration::from_secs(30),
        )
    });
    let tombstones = tombstoned.iter().map(|key| {
        producer.send(
            FutureRecord::<[u8], [u8]>::to(&link_topic)
                .partition(0)
                .key(key.as_slice()),
            Duration::from_secs(30),
        )
    });
    let (suppressions, tombstones) = futures::future::join(
        futures::future::join_all(suppressions),
        futures::future::join_all(tombstones),
    )
    .await;
    for delivery in suppressions.into_iter().chain(tombstones) {
        if let Err((error, _)) = delivery {
            bail!(
                "cannot produce to {suppression_topic} or {link_topic}: {error}; nothing was \
                 deleted from ClickHouse: run `touchline forget` again"
            );
        }
    }
    tracing::info!(
        identifiers = members.len(),
        link_sets = tombstoned.len(),
        "suppressed; waiting for the running instances before deleting"
    );
    tokio::time::sleep(settle).await;

    // 3. Every table, until nothing is left.
    let subject = Subject {
        identifiers: members.iter().map(|id| pseudonymiser.stored(id)).collect(),
        customer_ids: members
            .iter()
            .map(|id| pseudonymiser.customer_id(id))
            .collect(),
        needles: members.iter().flat_map(raw_needles).collect(),
    };
    let contacts = erasure::contacts_of(warehouse, &subject).await?;
    let days = erasure::days_of(warehouse, &subject, &contacts).await?;
    let erased = erasure::erase(warehouse, &subject, &contacts, MUTATION_TIMEOUT).await?;
    for round in 1..=ROUNDS {
        let left: Vec<Erased> = erasure::remaining(warehouse, &subject, &contacts)
            .await?
            .into_iter()
            .filter(|e| e.rows > 0)
            .collect();
        if left.is_empty() {
            // 4. The days' aggregates, recomputed from what is left.
            let marks = MarkProducer::new(&client, prefix).await?;
            marks
                .publish(&days.iter().map(|d| Mark::Day(*d)).collect())
                .await
                .context("the customer is erased, but its days' aggregates are not recomputed")?;
            return Ok(Report {
                identifiers: members.len(),
                link_sets: tombstoned.len(),
                contacts: contacts.len(),
                erased,
                days: days.len(),
            });
        }
        if round == ROUNDS {
            let tables: Vec<String> = left
                .iter()
                .map(|e| format!("{} ({} rows)", e.table, e.rows))
                .collect();
            bail!(
                "rows of the customer are still in {} after {ROUNDS} rounds of deletes; run \
                 `touchline forget` again",
                tables.join(", ")
            );
        }
        // Rows of a batch that was in flight when the list changed.
        tokio::time::sleep(settle).await;
        erasure::erase(warehouse, &subject, &contacts, MUTATION_TIMEOUT).await?;
    }
    unreachable!("the last round returns")
}

/// Every identifier of the customer of `identifier` in the graph of `sets`
/// (without the sets the suppression list erased), or `identifier` alone
/// when it was never linked.
fn customer_of(
    identifier: &Identifier,
    sets: &[(Vec<u8>, Vec<Identifier>)],
    suppressed: &HashSet<Fingerprint>,
    pseudonymiser: &Pseudonymiser,
) -> Vec<Identifier> {
    let mut graph = IdentityGraph::new();
    for (_, ids) in sets {
        if !ids
            .iter()
            .any(|id| suppressed.contains(&pseudonymiser.fingerprint(id)))
        {
            graph.link(ids);
        }
    }
    let everyone = graph.take_changes();
    let Some(customer) = everyone
        .iter()
        .find(|(id, _)| id == identifier)
        .map(|(_, customer)| *customer)
    else {
        return vec![identifier.clone()];
    };
    let mut members: Vec<Identifier> = everyone
        .into_iter()
        .filter(|(_, c)| *c == customer)
        .map(|(id, _)| id)
        .collect();
    members.sort();
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(typed: &[&str]) -> (Vec<u8>, Vec<Identifier>) {
        let ids: Vec<Identifier> = typed
            .iter()
            .map(|t| Identifier::parse(t).expect("valid"))
            .collect();
        (typed.join("\n").into_bytes(), ids)
    }

    #[test]
    fn the_customer_is_every_identifier_of_its_component_but_not_the_other_account() {
        let sets = [
            set(&["account:A", "email:a@x.io", "device:d1"]),
            set(&["email:a@x.io", "phone:010-1234-5678"]),
            set(&["account:B", "device:d1", "device:d2"]),
            set(&["email:other@x.io"]),
        ];
        let plain = Pseudonymiser::disabled();
        let email = Identifier::parse("email:a@x.io").expect("valid");
        let typed: Vec<String> = customer_of(&email, &sets, &HashSet::new(), &plain)
            .iter()
            .map(ToString::to_string)
            .collect();
        // device:d1 is one hop from both accounts: the tie goes to A.
        assert_eq!(
            typed,
            [
                "account:A",
                "email:a@x.io",
                "phone:+821012345678",
                "device:d1"
            ]
        );
        let unknown = Identifier::parse("email:nobody@x.io").expect("valid");
        assert_eq!(
            customer_of(&unknown, &sets, &HashSet::new(), &plain),
            std::slice::from_ref(&unknown)
        );
        // Sets already suppressed are not linked.
        let suppressed = HashSet::from([plain.fingerprint(&email)]);
        let phone = Identifier::parse("phone:+821012345678").expect("valid");
        assert_eq!(
            customer_of(&phone, &sets, &suppressed, &plain),
            std::slice::from_ref(&phone)
        );
    }
}
