//! `SPEC.md` §4-6 re-implemented from the load generator's ground truth,
//! independently of `touchline_model`: the contacts, journeys, daily metrics
//! and customers that `v_contacts`, `v_journeys`, `v_channel_daily`,
//! `v_consistency_daily` and `v_customers` must show, compared column by
//! column.
//!
//! Customers come from `v_identities`, which `check_identities` compares
//! with the identity oracle; everything else comes from the truth alone.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use touchline_loadgen::truth::{GroundTruth, TruthContact};
use touchline_model::Channel;

use crate::{as_i64, identities, link_sets, TestEnv};

const DAY_MS: i64 = 86_400_000;
const JOURNEY_GAP_MS: i64 = 7 * DAY_MS;
const GAP_MINIMUM: u64 = 10;

/// Compares the five derived views with the truth; panics naming every
/// difference (the first few of each view).
pub async fn check_derived(env: &TestEnv, truth: &GroundTruth) {
    let identities: BTreeMap<String, String> = identities(env)
        .await
        .into_iter()
        .map(|(id, (customer, _))| (id, customer))
        .collect();
    let expected = Expected::of(truth, &identities);
    let mut problems = Vec::new();
    problems.extend(compare(
        "v_contacts",
        &expected.contacts,
        &rows_by(env, "SELECT * FROM {db}.v_contacts", &["contact_id"]).await,
    ));
    problems.extend(compare(
        "v_journeys",
        &expected.journeys,
        &rows_by(
            env,
            "SELECT * FROM {db}.v_journeys",
            &["customer_id", "topic", "started_at_ms"],
        )
        .await,
    ));
    problems.extend(compare(
        "v_channel_daily",
        &expected.channel_days,
        &rows_by(
            env,
            "SELECT * FROM {db}.v_channel_daily",
            &["day", "channel"],
        )
        .await,
    ));
    problems.extend(compare(
        "v_consistency_daily",
        &expected.consistency_days,
        &rows_by(env, "SELECT * FROM {db}.v_consistency_daily", &["day"]).await,
    ));
    problems.extend(compare(
        "v_customers",
        &expected.customers,
        &rows_by(env, "SELECT * FROM {db}.v_customers", &["customer_id"]).await,
    ));
    assert!(
        problems.is_empty(),
        "derived views differ from the truth:\n{}",
        problems.join("\n")
    );
    assert!(
        expected.journeys.len() > 50 && expected.channel_days.len() > 20,
        "a load with journeys and days to compare"
    );
}

/// Expected rows of each view, by their key, as JSON objects.
struct Expected {
    contacts: BTreeMap<String, Value>,
    journeys: BTreeMap<String, Value>,
    channel_days: BTreeMap<String, Value>,
    consistency_days: BTreeMap<String, Value>,
    customers: BTreeMap<String, Value>,
}

/// What a day and channel adds up, before rates.
#[derive(Default)]
struct Day {
    contacts: u64,
    resolved: u64,
    responses_ms: Vec<i64>,
    calls: u64,
    handled: u64,
    handle_sum: f64,
    abandoned: u64,
    conversations: u64,
    handed_off: u64,
    csat: Vec<u8>,
    nps: Vec<u8>,
    ces: Vec<u8>,
    sentiment: Vec<f64>,
}

impl Expected {
    fn of(truth: &GroundTruth, identities: &BTreeMap<String, String>) -> Expected {
        let sets = link_sets(truth);
        let customer_of_event: BTreeMap<&str, String> = truth
            .events
            .iter()
            .zip(&sets)
            .map(|(e, set)| {
                let customer = set.first().map(|id| identities[id].clone());
                (e.event_id.as_str(), customer.unwrap_or_default())
            })
            .collect();
        // A contact's customer: that of the first identifier, in anchor
        // order, among all its events' identifiers.
        let mut key_of_contact: BTreeMap<&str, &String> = BTreeMap::new();
        for (event, set) in truth.events.iter().zip(&sets) {
            let (Some(contact), Some(first)) = (&event.contact_id, set.first()) else {
                continue;
            };
            let key = key_of_contact.entry(contact.as_str()).or_insert(first);
            if anchor_order(first) < anchor_order(key) {
                *key = first;
            }
        }
        let customer_of_contact = |c: &TruthContact| {
            key_of_contact
                .get(c.contact_id.as_str())
                .map(|key| identities[*key].clone())
                .unwrap_or_default()
        };

        let mut contacts = BTreeMap::new();
        let mut days: BTreeMap<(i64, Channel), Day> = BTreeMap::new();
        let mut of_customer: BTreeMap<String, Vec<&TruthContact>> = BTreeMap::new();
        for c in &truth.contacts {
            let customer = customer_of_contact(c);
            contacts.insert(
                c.contact_id.clone(),
                serde_json::json!({
                    "contact_id": c.contact_id,
                    "customer_id": customer,
                    "channel": c.channel.as_str(),
                    "topic": c.topic.as_str(),
                    "started_at_ms": c.started_at_ms,
                    "resolved": u8::from(c.resolved),
                    "handed_off": u8::from(c.handed_off),
                    "abandoned": u8::from(c.abandoned),
                    "csat": c.csat, "ces": c.ces, "nps": c.nps,
                    "first_response_s": c.first_response_ms.map(|ms| ms as f64 / 1000.0),
                    "handle_s": c.handle_seconds,
                    "events": c.events,
                }),
            );
            let day = days
                .entry((c.started_at_ms.div_euclid(DAY_MS), c.channel))
                .or_default();
            day.contacts += 1;
            day.resolved += u64::from(c.resolved);
            day.responses_ms.extend(c.first_response_ms);
            match c.channel {
                Channel::CallCenter => {
                    day.calls += 1;
                    day.abandoned += u64::from(c.abandoned);
                    if let (false, Some(s)) = (c.abandoned, c.handle_seconds) {
                        day.handled += 1;
                        day.handle_sum += f64::from(s);
                    }
                }
                Channel::Chatbot => {
                    day.conversations += 1;
                    day.handed_off += u64::from(c.handed_off);
                }
                Channel::App | Channel::Social => {}
            }
            if !customer.is_empty() {
                of_customer.entry(customer).or_default().push(c);
            }
        }
        let mut customer_channels: BTreeMap<String, BTreeSet<Channel>> = BTreeMap::new();
        let mut customer_csat: BTreeMap<String, BTreeMap<Channel, Vec<u8>>> = BTreeMap::new();
        for e in &truth.events {
            let day = days
                .entry((e.occurred_at_ms.div_euclid(DAY_MS), e.channel))
                .or_default();
            day.csat.extend(e.csat);
            day.nps.extend(e.nps);
            day.ces.extend(e.ces);
            day.sentiment.extend(e.sentiment.map(f64::from));
            let customer = &customer_of_event[e.event_id.as_str()];
            if !customer.is_empty() {
                customer_channels
                    .entry(customer.clone())
                    .or_default()
                    .insert(e.channel);
                if let Some(csat) = e.csat {
                    customer_csat
                        .entry(customer.clone())
                        .or_default()
                        .entry(e.channel)
                        .or_default()
                        .push(csat);
                }
            }
        }

        // Journeys: per customer and topic, split where a contact starts
        // more than seven days after the previous one.
        let mut journeys = BTreeMap::new();
        let mut journey_days: BTreeMap<i64, Vec<(usize, usize, usize, bool)>> = BTreeMap::new();
        let mut journeys_of: BTreeMap<&String, usize> = BTreeMap::new();
        for (customer, list) in &of_customer {
            let mut list = list.clone();
            list.sort_by(|a, b| {
                (a.topic.as_str(), a.started_at_ms, &a.contact_id).cmp(&(
                    b.topic.as_str(),
                    b.started_at_ms,
                    &b.contact_id,
                ))
            });
            let mut runs: Vec<Vec<&TruthContact>> = Vec::new();
            for c in list {
                match runs.last_mut() {
                    Some(run)
                        if run.last().is_some_and(|l| {
                            l.topic == c.topic
                                && c.started_at_ms - l.started_at_ms <= JOURNEY_GAP_MS
                        }) =>
                    {
                        run.push(c)
                    }
                    _ => runs.push(vec![c]),
                }
            }
            *journeys_of.entry(customer).or_default() = runs.len();
            for run in runs {
                let channels: BTreeSet<Channel> = run.iter().map(|c| c.channel).collect();
                let switches = run
                    .windows(2)
                    .filter(|w| w[0].channel != w[1].channel)
                    .count();
                let resolved = run.last().is_some_and(|c| c.resolved);
                let ocr = run.len() == 1 && resolved;
                let first = run[0];
                journey_days
                    .entry(first.started_at_ms.div_euclid(DAY_MS))
                    .or_default()
                    .push((run.len(), channels.len(), switches, ocr));
                let key = format!(
                    "{customer}|{}|{}",
                    first.topic.as_str(),
                    first.started_at_ms
                );
                journeys.insert(
                    key,
                    serde_json::json!({
                        "customer_id": customer,
                        "topic": first.topic.as_str(),
                        "started_at_ms": first.started_at_ms,
                        "contacts": run.len(),
                        "channel_count": channels.len(),
                        "channel_switches": switches,
                        "resolved": u8::from(resolved),
                        "one_contact_resolution": u8::from(ocr),
                        "contact_ids": run.iter().map(|c| c.contact_id.clone()).collect::<Vec<_>>(),
                        "channels": channels.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                    }),
                );
            }
        }

        let mut channel_days = BTreeMap::new();
        let mut gaps: BTreeMap<i64, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for ((day, channel), d) in &mut days {
            let scored = d.csat.len() + d.nps.len() + d.ces.len() + d.sentiment.len();
            if d.contacts == 0 && scored == 0 {
                continue;
            }
            d.responses_ms.sort_unstable();
            let n = |v: usize| v as u64;
            let csat_top2 = d.csat.iter().filter(|s| **s >= 4).count();
            let promoters = d.nps.iter().filter(|s| **s >= 9).count();
            let detractors = d.nps.iter().filter(|s| **s <= 6).count();
            let gap = gaps.entry(*day).or_default();
            if n(d.csat.len()) >= GAP_MINIMUM {
                gap.0.push(100.0 * csat_top2 as f64 / d.csat.len() as f64);
            }
            if d.contacts >= GAP_MINIMUM {
                gap.1.push(100.0 * d.resolved as f64 / d.contacts as f64);
            }
            channel_days.insert(
                format!("{}|{}", date(*day), channel.as_str()),
                serde_json::json!({
                    "day": date(*day),
                    "channel": channel.as_str(),
                    "contacts": d.contacts,
                    "resolved_contacts": d.resolved,
                    "resolution_rate": ratio(d.resolved as f64, d.contacts),
                    "frt_responses": d.responses_ms.len(),
                    "frt_mean_s": ratio(d.responses_ms.iter().sum::<i64>() as f64 / 1000.0, n(d.responses_ms.len())),
                    "frt_p50_s": nearest_rank(&d.responses_ms, 50).map(|ms| ms as f64 / 1000.0),
                    "frt_p90_s": nearest_rank(&d.responses_ms, 90).map(|ms| ms as f64 / 1000.0),
                    "calls": d.calls,
                    "handle_mean_s": ratio(d.handle_sum, d.handled),
                    "abandoned_calls": d.abandoned,
                    "abandon_rate": ratio(d.abandoned as f64, d.calls),
                    "conversations": d.conversations,
                    "handed_off": d.handed_off,
                    "containment_rate": ratio((d.conversations - d.handed_off) as f64, d.conversations),
                    "csat_responses": d.csat.len(),
                    "csat_top2": csat_top2,
                    "csat_pct": ratio(100.0 * csat_top2 as f64, n(d.csat.len())),
                    "nps_responses": d.nps.len(),
                    "nps_promoters": promoters,
                    "nps_detractors": detractors,
                    "nps": ratio(100.0 * (promoters as f64 - detractors as f64), n(d.nps.len())),
                    "ces_responses": d.ces.len(),
                    "ces_mean": ratio(d.ces.iter().map(|s| f64::from(*s)).sum(), n(d.ces.len())),
                    "sentiment_responses": d.sentiment.len(),
                    "sentiment_mean": ratio(d.sentiment.iter().sum(), n(d.sentiment.len())),
                }),
            );
        }

        let mut consistency_days = BTreeMap::new();
        let all_days: BTreeSet<i64> = journey_days.keys().chain(gaps.keys()).copied().collect();
        for day in all_days {
            let list = journey_days.get(&day).cloned().unwrap_or_default();
            let (csat, resolution) = gaps.get(&day).cloned().unwrap_or_default();
            let journeys = n64(list.len());
            let multichannel = n64(list.iter().filter(|j| j.1 >= 2).count());
            let ocr = n64(list.iter().filter(|j| j.3).count());
            let repeat = n64(list.iter().filter(|j| j.0 >= 2).count());
            let (csat_gap, resolution_gap) = (spread(&csat), spread(&resolution));
            if journeys == 0 && csat_gap.is_none() && resolution_gap.is_none() {
                continue;
            }
            consistency_days.insert(
                date(day),
                serde_json::json!({
                    "day": date(day),
                    "journeys": journeys,
                    "multichannel_journeys": multichannel,
                    "ocr_journeys": ocr,
                    "repeat_journeys": repeat,
                    "multichannel_rate": ratio(multichannel as f64, journeys),
                    "ocr_rate": ratio(ocr as f64, journeys),
                    "repeat_rate": ratio(repeat as f64, journeys),
                    "channel_switches": list.iter().map(|j| j.2).sum::<usize>(),
                    "csat_gap_pp": csat_gap,
                    "resolution_gap_pp": resolution_gap,
                }),
            );
        }

        let mut customers = BTreeMap::new();
        for (customer, channels) in &customer_channels {
            let means: Vec<f64> = customer_csat
                .get(customer)
                .map(|by| {
                    by.values()
                        .map(|s| s.iter().map(|v| f64::from(*v)).sum::<f64>() / s.len() as f64)
                        .collect()
                })
                .unwrap_or_default();
            customers.insert(
                customer.clone(),
                serde_json::json!({
                    "customer_id": customer,
                    "channels": channels.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                    "channels_used": channels.len(),
                    "contacts": of_customer.get(customer).map_or(0, Vec::len),
                    "journeys": journeys_of.get(customer).copied().unwrap_or(0),
                    "csat_range": spread(&means),
                }),
            );
        }
        Expected {
            contacts,
            journeys,
            channel_days,
            consistency_days,
            customers,
        }
    }
}

/// Rows of a view keyed by the values of `key` joined with `|`.
async fn rows_by(env: &TestEnv, sql: &str, key: &[&str]) -> BTreeMap<String, Value> {
    let rows = env.query(sql).await;
    let count = rows.len();
    let keyed: BTreeMap<String, Value> = rows
        .into_iter()
        .map(|r| {
            let k: Vec<String> = key.iter().map(|k| text(&r[*k])).collect();
            (k.join("|"), r)
        })
        .collect();
    assert_eq!(keyed.len(), count, "{sql}: one row per {key:?}");
    keyed
}

/// Differences between the expected rows and the view's, for every column
/// the expected rows name (floats to 1e-6).
fn compare(
    view: &str,
    expected: &BTreeMap<String, Value>,
    actual: &BTreeMap<String, Value>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let extra: Vec<&String> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        problems.push(format!(
            "{view}: {} rows missing (e.g. {:?}), {} unexpected (e.g. {:?})",
            missing.len(),
            &missing[..missing.len().min(3)],
            extra.len(),
            &extra[..extra.len().min(3)]
        ));
    }
    let mut wrong = 0;
    for (key, want) in expected {
        let Some(got) = actual.get(key) else { continue };
        for (column, value) in want.as_object().into_iter().flatten() {
            if !same(value, &got[column]) {
                wrong += 1;
                if wrong <= 5 {
                    problems.push(format!(
                        "{view} {key}: {column} = {}, want {value}",
                        got[column]
                    ));
                }
            }
        }
    }
    if wrong > 5 {
        problems.push(format!("{view}: {wrong} values differ in all"));
    }
    problems
}

fn same(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Null, Value::Null) => true,
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Number(n), _) if n.is_f64() => {
            let g = got
                .as_f64()
                .or_else(|| got.as_str().and_then(|s| s.parse().ok()));
            g.is_some_and(|g| (g - n.as_f64().unwrap_or(f64::NAN)).abs() < 1e-6)
        }
        (Value::Number(_), _) => as_i64(want) == as_i64(got),
        (Value::String(a), Value::String(b)) => a == b,
        _ => false,
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Kind rank, then value: the anchor order of `SPEC.md` §3.
fn anchor_order(typed: &str) -> (usize, &str) {
    const KINDS: [&str; 6] = ["account", "email", "phone", "social", "device", "visitor"];
    let (kind, value) = typed.split_once(':').unwrap_or((typed, ""));
    (
        KINDS.iter().position(|k| *k == kind).unwrap_or(KINDS.len()),
        value,
    )
}

/// The smallest value with at least `percent`% of the values at or below it.
fn nearest_rank(sorted: &[i64], percent: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

fn ratio(part: f64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part / whole as f64)
}

fn spread(values: &[f64]) -> Option<f64> {
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    (values.len() >= 2).then_some(high - low)
}

fn n64(n: usize) -> u64 {
    n as u64
}

/// `YYYY-MM-DD` of a day since the Unix epoch.
fn date(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}
