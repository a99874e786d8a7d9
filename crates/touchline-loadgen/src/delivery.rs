//! The order of the stream: transport delays, duplicates, malformed messages.
//!
//! Every message gets a delivery time: when its source published it plus a
//! transport delay (mostly a second or two, sometimes minutes, hours, or a
//! couple of days for a device that was offline). Messages are produced in
//! the order of those times, so events arrive out of order across topics and
//! now and then within one key, but a key's messages are mostly in order, as
//! in a real stream. A duplicate is the same message again, a little or a lot
//! later.

use crate::dice::Dice;
use crate::message::{Payload, SourceMessage};
use crate::scenario::{DAY_MS, HOUR_MS, MINUTE_MS};
use crate::sim::SimEvent;
use crate::truth::TruthEvent;

/// A message and when it is delivered.
struct Scheduled {
    at_ms: i64,
    message: SourceMessage,
}

fn transport_lag(dice: &mut Dice) -> i64 {
    match dice.weighted(&[(0, 80), (1, 12), (2, 6), (3, 2)]) {
        0 => dice.int(0, 3_000),
        1 => dice.int(0, 5 * MINUTE_MS),
        2 => dice.int(0, 2 * HOUR_MS),
        _ => dice.int(0, 2 * DAY_MS),
    }
}

fn redelivery_lag(dice: &mut Dice) -> i64 {
    match dice.weighted(&[(0, 50), (1, 35), (2, 15)]) {
        0 => dice.int(1_000, 60_000),
        1 => dice.int(MINUTE_MS, 30 * MINUTE_MS),
        _ => dice.int(30 * MINUTE_MS, 6 * HOUR_MS),
    }
}

/// The number of items a rate asks for: `round(rate * n)`, at most `n`.
pub(crate) fn share(rate: f64, n: usize) -> usize {
    let wanted = (rate.clamp(0.0, 1.0) * n as f64).round();
    // In range: 0 <= wanted <= n.
    (wanted as usize).min(n)
}

/// Orders `events` (each delivered once, `duplicates` of them twice) and the
/// malformed messages (with their delivery times) into one stream; returns
/// it with the events' truth.
pub(crate) fn stream(
    dice: &mut Dice,
    events: Vec<SimEvent>,
    duplicates: usize,
    malformed: Vec<(SourceMessage, i64)>,
) -> (Vec<SourceMessage>, Vec<TruthEvent>) {
    let mut order: Vec<usize> = (0..events.len()).collect();
    // A partial Fisher-Yates: the first `duplicates` entries are a uniform
    // sample of the events.
    for i in 0..duplicates.min(order.len()) {
        let j = i + dice.index(order.len() - i);
        order.swap(i, j);
    }
    let mut twice = vec![false; events.len()];
    for &i in &order[..duplicates.min(order.len())] {
        twice[i] = true;
    }
    let mut scheduled = Vec::with_capacity(events.len() + duplicates + malformed.len());
    let mut truth = Vec::with_capacity(events.len());
    for (event, twice) in events.into_iter().zip(twice) {
        let at_ms = event.published_ms + transport_lag(dice);
        let message = SourceMessage {
            channel: event.channel,
            key: event.key,
            payload: Payload::Avro {
                schema: event.schema,
                document: event.document,
            },
            event_id: Some(event.truth.event_id.clone()),
            delivery: 1,
        };
        truth.push(event.truth);
        if twice {
            scheduled.push(Scheduled {
                at_ms: at_ms + redelivery_lag(dice),
                message: SourceMessage {
                    delivery: 2,
                    ..message.clone()
                },
            });
        }
        scheduled.push(Scheduled { at_ms, message });
    }
    scheduled.extend(
        malformed
            .into_iter()
            .map(|(message, at_ms)| Scheduled { at_ms, message }),
    );
    // Stable: equal times keep the order above, which is deterministic.
    scheduled.sort_by_key(|s| s.at_ms);
    let messages = scheduled.into_iter().map(|s| s.message).collect();
    (messages, truth)
}
