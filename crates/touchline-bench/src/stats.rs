//! Figures from Touchline's own output: the drain rate from its debug logs,
//! and quantiles of a Prometheus histogram.

use std::path::Path;

use anyhow::{bail, Context};
use chrono::DateTime;
use serde_json::json;

/// One pipeline line about batches: when (Unix seconds), how many source
/// messages and how many derive marks (messages of the mark topic) it
/// covers, and whether it is a batch confirmed by ClickHouse (`batch
/// inserted`) or batches whose derive round is done (`batches derived`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Batch {
    at_s: f64,
    messages: u64,
    marks: u64,
    derived: bool,
}

/// `line` without ANSI colour sequences (`ESC [ ... m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses a `batch inserted` or `batches derived` debug line of the
/// pipeline.
fn parse_batch(line: &str) -> Option<Batch> {
    let line = strip_ansi(line);
    let derived = if line.contains("batches derived") {
        true
    } else if line.contains("batch inserted") {
        false
    } else {
        return None;
    };
    let stamp = line.split_whitespace().next()?;
    let at = DateTime::parse_from_rfc3339(stamp).ok()?;
    let field = |name: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    let all = field("messages")?;
    let marks = field("marks")?;
    #[allow(clippy::cast_precision_loss)]
    let at_s = at.timestamp_micros() as f64 / 1e6;
    Some(Batch {
        at_s,
        messages: all.saturating_sub(marks),
        marks,
        derived,
    })
}

/// The drain rate of source messages: those after the first batch, over the
/// time from the first batch's confirmation to the end. `messages_per_s`
/// runs to the last derive round (customers and days recomputed after the
/// last source message, the derive marks that produced processed), so that
/// it counts every derive step; `timeline_messages_per_s` runs to the
/// confirmation of the last batch with source messages.
fn rate_of(mut batches: Vec<Batch>) -> serde_json::Value {
    batches.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    let inserted: Vec<&Batch> = batches.iter().filter(|b| !b.derived).collect();
    let total: u64 = inserted.iter().map(|b| b.messages).sum();
    let marks: u64 = inserted.iter().map(|b| b.marks).sum();
    let first = inserted.iter().find(|b| b.messages > 0);
    let last_source = inserted.iter().rev().find(|b| b.messages > 0);
    let (Some(first), Some(last_source), Some(last)) = (first, last_source, batches.last()) else {
        return json!({ "batches": 0, "messages": 0, "marks": marks, "first_to_last_s": 0.0, "messages_per_s": 0.0 });
    };
    #[allow(clippy::cast_precision_loss)]
    let per_s = |span: f64| {
        if span > 0.0 {
            (total - first.messages) as f64 / span
        } else {
            0.0
        }
    };
    let span = last.at_s - first.at_s;
    let timeline_span = last_source.at_s - first.at_s;
    json!({
        "batches": inserted.len(),
        "derive_rounds": batches.len() - inserted.len(),
        "messages": total,
        "marks": marks,
        "first_batch_at": first.at_s,
        "last_batch_at": last.at_s,
        "last_source_batch_at": last_source.at_s,
        "first_to_last_s": span,
        "messages_per_s": per_s(span),
        "timeline_messages_per_s": per_s(timeline_span),
    })
}

/// With `cpu`, samples of the machine's CPU taken meanwhile
/// ([`parse_cpu_sample`]), the rate also says how busy the machine was while
/// the source messages drained (`busy_draining`: first batch to the last
/// batch of source messages) and after (`busy_after`: to the last derive
/// round), as shares of all its cores.
pub fn batch_rate(
    logs: &[std::path::PathBuf],
    cpu: Option<&Path>,
) -> anyhow::Result<serde_json::Value> {
    let mut batches = Vec::new();
    for path in logs {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        batches.extend(text.lines().filter_map(parse_batch));
    }
    let mut rate = rate_of(batches);
    if let Some(cpu) = cpu {
        let text = std::fs::read_to_string(cpu)
            .with_context(|| format!("cannot read {}", cpu.display()))?;
        let samples: Vec<CpuSample> = text.lines().filter_map(parse_cpu_sample).collect();
        let at = |field: &str| rate[field].as_f64();
        if let (Some(first), Some(last_source), Some(last)) = (
            at("first_batch_at"),
            at("last_source_batch_at"),
            at("last_batch_at"),
        ) {
            rate["busy_draining"] = json!(busy_between(&samples, first, last_source));
            rate["busy_after"] = json!(busy_between(&samples, last_source, last));
        }
    }
    Ok(rate)
}

/// The machine's CPU counters at a moment: Unix seconds, then jiffies busy
/// and jiffies in all, over every core.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CpuSample {
    at_s: f64,
    busy: u64,
    total: u64,
}

/// Parses `<Unix seconds> cpu <user> <nice> <system> <idle> <iowait> <irq>
/// <softirq> <steal> ...`: the first line of `/proc/stat` behind the time it
/// was read. Idle and iowait are not busy; guest time is already in user.
fn parse_cpu_sample(line: &str) -> Option<CpuSample> {
    let mut words = line.split_whitespace();
    let at_s: f64 = words.next()?.parse().ok()?;
    if words.next()? != "cpu" {
        return None;
    }
    let counters: Vec<u64> = words
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = counters.try_into().ok()?;
    let busy = user + nice + system + irq + softirq + steal;
    Some(CpuSample {
        at_s,
        busy,
        total: busy + idle + iowait,
    })
}

/// The share of the machine's CPU that was busy between the first and the
/// last sample taken from `from` to `to`; `None` with fewer than two.
fn busy_between(samples: &[CpuSample], from: f64, to: f64) -> Option<f64> {
    let within = |s: &&CpuSample| s.at_s >= from && s.at_s <= to;
    let first = samples.iter().find(within)?;
    let last = samples
        .iter()
        .rfind(within)
        .filter(|last| last.at_s > first.at_s)?;
    let total = last.total.checked_sub(first.total).filter(|t| *t > 0)?;
    #[allow(clippy::cast_precision_loss)]
    Some(last.busy.saturating_sub(first.busy) as f64 / total as f64)
}

/// Cumulative bucket counts `(upper bound, count)` of `metric`, in order,
/// with `+Inf` last; and the sum.
fn buckets(text: &str, metric: &str) -> anyhow::Result<(Vec<(f64, f64)>, f64)> {
    let bucket = format!("{metric}_bucket{{");
    let sum_name = format!("{metric}_sum");
    let mut out = Vec::new();
    let mut sum = 0.0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(&bucket) {
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let Some(le) = labels
                .split(',')
                .find_map(|l| l.strip_prefix("le=\""))
                .map(|l| l.trim_end_matches('"'))
            else {
                continue;
            };
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse()?
            };
            out.push((bound, value.trim().parse()?));
        } else if let Some(value) = line
            .strip_prefix(&sum_name)
            .and_then(|r| r.strip_prefix(' '))
        {
            sum = value.trim().parse()?;
        }
    }
    if out.is_empty() {
        bail!("no buckets of {metric} in the scrape");
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok((out, sum))
}

/// The `q` quantile, interpolated linearly within its bucket, and the
/// bucket's bounds.
fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<(f64, f64, f64)> {
    let count = buckets.last()?.1;
    if count <= 0.0 {
        return None;
    }
    let target = q * count;
    let mut lower = 0.0;
    let mut below = 0.0;
    for &(upper, cumulative) in buckets {
        if cumulative >= target && cumulative > below {
            if upper.is_infinite() {
                return Some((lower, lower, upper));
            }
            let value = lower + (upper - lower) * (target - below) / (cumulative - below);
            return Some((value, lower, upper));
        }
        lower = upper;
        below = cumulative;
    }
    None
}

pub fn histogram(
    metric: &str,
    quantiles: &str,
    before: Option<&Path>,
    scrape: &Path,
) -> anyhow::Result<serde_json::Value> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let (mut after, mut sum) = buckets(&read(scrape)?, metric)?;
    if let Some(before) = before {
        let (earlier, earlier_sum) = buckets(&read(before)?, metric)?;
        for ((_, count), (_, was)) in after.iter_mut().zip(earlier) {
            *count -= was;
        }
        sum -= earlier_sum;
    }
    let count = after.last().map_or(0.0, |b| b.1);
    let mut out = serde_json::Map::new();
    for q in quantiles.split(',') {
        let q: f64 = q.trim().parse().context("a quantile is a number")?;
        if let Some((value, lower, upper)) = quantile(&after, q) {
            out.insert(
                q.to_string(),
                json!({ "value": value, "bucket_lower": lower, "bucket_upper": if upper.is_finite() { json!(upper) } else { json!("+Inf") } }),
            );
        }
    }
    Ok(json!({
        "count": count,
        "mean": if count > 0.0 { sum / count } else { 0.0 },
        "quantiles": out,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_lines_parse_with_or_without_colour() {
        let plain = "2026-03-01T10:00:01.500000Z DEBUG touchline::pipeline: batch inserted messages=20000 marks=0 rows=19900 dead_letters=100 waited_ms=80";
        let coloured = "\u{1b}[2m2026-03-01T10:00:03.500000Z\u{1b}[0m \u{1b}[34mDEBUG\u{1b}[0m \u{1b}[2mtouchline::pipeline\u{1b}[0m\u{1b}[2m:\u{1b}[0m batch inserted \u{1b}[3mmessages\u{1b}[0m\u{1b}[2m=\u{1b}[0m5000 \u{1b}[3mmarks\u{1b}[0m\u{1b}[2m=\u{1b}[0m0";
        let a = parse_batch(plain).expect("plain");
        assert_eq!(a.messages, 20_000);
        let b = parse_batch(coloured);
        // Colour splits `messages=5000` into separate spans; stripped, it is whole.
        assert_eq!(b.map(|b| b.messages), Some(5000));
        assert!(parse_batch("2026-03-01T10:00:01Z INFO subscribed").is_none());
        let rate = rate_of(vec![a, b.expect("coloured")]);
        assert_eq!(rate["messages"], 25_000);
        assert!((rate["messages_per_s"].as_f64().expect("rate") - 2500.0).abs() < 1e-6);
    }

    #[test]
    fn derive_marks_are_not_source_messages_and_rounds_end_the_run() {
        let lines = [
            "2026-03-01T10:00:01Z DEBUG touchline::pipeline: batch inserted messages=20000 marks=0 rows=20000",
            "2026-03-01T10:00:02Z DEBUG touchline::pipeline: batch inserted messages=21000 marks=1000 rows=20000",
            "2026-03-01T10:00:03Z DEBUG touchline::pipeline: batches derived batches=2 messages=41000 marks=1000",
            "2026-03-01T10:00:04Z DEBUG touchline::pipeline: batch inserted messages=3000 marks=3000 rows=0",
            "2026-03-01T10:00:05Z DEBUG touchline::pipeline: batches derived batches=1 messages=3000 marks=3000",
        ];
        let batches: Vec<Batch> = lines.iter().filter_map(|l| parse_batch(l)).collect();
        assert_eq!(batches[1].messages, 20_000);
        assert!(batches[2].derived);
        let rate = rate_of(batches);
        assert_eq!(rate["messages"], 40_000);
        assert_eq!(rate["marks"], 4_000);
        assert_eq!(rate["derive_rounds"], 2);
        // 20,000 after the first batch, over 4 s to the last derive round
        // and over 1 s to the last batch with source messages.
        assert!((rate["messages_per_s"].as_f64().expect("rate") - 5000.0).abs() < 1e-6);
        assert!((rate["timeline_messages_per_s"].as_f64().expect("rate") - 20_000.0).abs() < 1e-6);
    }

    #[test]
    fn machine_busy_is_taken_between_the_samples_in_a_span() {
        let samples: Vec<CpuSample> = [
            "100.0 cpu 10 0 10 80 0 0 0 0 0 0",
            "101.0 cpu 100 0 20 80 0 0 0 0 0 0",
            "102.0 cpu 150 0 20 130 0 0 0 0 0 0",
            "102.5 cpu 150 0 20 180 0 0 0 0 0 0",
            "not a sample",
        ]
        .iter()
        .filter_map(|l| parse_cpu_sample(l))
        .collect();
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[1].busy, 120);
        assert_eq!(samples[1].total, 200);
        // 100 jiffies, all busy; then 150 jiffies, 50 of them busy.
        assert_eq!(busy_between(&samples, 100.0, 101.0), Some(1.0));
        let after = busy_between(&samples, 101.0, 103.0).expect("two samples");
        assert!((after - 50.0 / 150.0).abs() < 1e-9);
        assert_eq!(busy_between(&samples, 102.6, 110.0), None);
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let scrape = "# TYPE x histogram\nx_bucket{le=\"0.1\"} 0\nx_bucket{le=\"0.2\"} 50\nx_bucket{le=\"0.4\"} 100\nx_bucket{le=\"+Inf\"} 100\nx_sum 20\nx_count 100\n";
        let (b, sum) = buckets(scrape, "x").expect("parses");
        assert!((sum - 20.0).abs() < 1e-9);
        let (p50, lo, hi) = quantile(&b, 0.5).expect("p50");
        assert!((p50 - 0.2).abs() < 1e-9 && (lo - 0.1).abs() < 1e-9 && (hi - 0.2).abs() < 1e-9);
        let (p99, _, hi) = quantile(&b, 0.99).expect("p99");
        assert!((p99 - 0.396).abs() < 1e-9 && (hi - 0.4).abs() < 1e-9);
    }
}
