//! Deliberately malformed messages, each with the dead-letter reason the
//! pipeline must give it.
//!
//! Each is made from a copy of a real record with fresh ids (so that a
//! pipeline that wrongly accepted one would show an extra event rather than a
//! silent duplicate), spoiled in one of the [`BadKind`] ways when encoded.
//! They cycle through the kinds, so any five or more cover all of them, and
//! each is delivered exactly once at a random point of the stream.

use serde_json::Value;
use touchline_model::Channel;

use crate::dice::Dice;
use crate::encode::spoiled_enum_field;
use crate::message::{BadKind, BadMessage, Payload, SourceMessage, INVALID_SYMBOL};
use crate::people::UniqueIds;
use crate::scenario::Scenario;
use crate::sim::SimEvent;
use crate::truth::DeadLetter;

/// The field holding a channel's Kafka key (`SPEC.md` §1).
fn key_field(channel: Channel) -> &'static str {
    match channel {
        Channel::Chatbot => "conversation_id",
        Channel::App => "device_id",
        Channel::Social => "thread_id",
        Channel::CallCenter => "call_id",
    }
}

/// Gives a copied record new ids: a new event (and for calls a new call).
fn refresh_ids(channel: Channel, document: &mut Value, dice: &mut Dice, ids: &mut UniqueIds) {
    let (field, fresh) = match channel {
        Channel::Chatbot | Channel::App => ("event_id", ids.draw(dice, |d| d.uuid())),
        Channel::Social => ("id", ids.draw(dice, |d| format!("dl-{}", d.hex(12)))),
        Channel::CallCenter => ("call_id", ids.draw(dice, |d| format!("CA{}", d.digits(10)))),
    };
    if let Some(object) = document.as_object_mut() {
        object.insert(field.to_owned(), Value::String(fresh));
    }
}

/// `count` malformed messages with their delivery times, and their truth.
pub(crate) fn malformed(
    dice: &mut Dice,
    ids: &mut UniqueIds,
    scenario: &Scenario,
    events: &[SimEvent],
    count: usize,
) -> (Vec<(SourceMessage, i64)>, Vec<DeadLetter>) {
    let by_channel: Vec<(Channel, Vec<usize>)> = Channel::ALL
        .into_iter()
        .map(|c| {
            let of_channel = events
                .iter()
                .enumerate()
                .filter(|(_, e)| e.channel == c)
                .map(|(i, _)| i)
                .collect::<Vec<_>>();
            (c, of_channel)
        })
        .filter(|(_, of_channel)| !of_channel.is_empty())
        .collect();
    let mut messages = Vec::with_capacity(count);
    let mut truth = Vec::with_capacity(count);
    if by_channel.is_empty() {
        return (messages, truth);
    }
    for number in 0..count {
        let kind = BadKind::ALL[number % BadKind::ALL.len()];
        let Some((source, candidates)) = dice.choose(&by_channel) else {
            break;
        };
        let Some(&event) = dice.choose(candidates) else {
            break;
        };
        let event = &events[event];
        let target = if kind == BadKind::WrongSchemaForTopic {
            let others: Vec<Channel> = Channel::ALL.into_iter().filter(|c| c != source).collect();
            dice.pick(&others)
        } else {
            *source
        };
        let mut document = event.document.clone();
        refresh_ids(*source, &mut document, dice, ids);
        if kind == BadKind::InvalidEnum {
            if let Some(object) = document.as_object_mut() {
                object.insert(
                    spoiled_enum_field(*source).to_owned(),
                    Value::String(INVALID_SYMBOL.to_owned()),
                );
            }
        }
        let key = document
            .get(key_field(*source))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let number = u32::try_from(number).unwrap_or(u32::MAX);
        truth.push(DeadLetter {
            number,
            topic: target.source_topic().to_owned(),
            channel: target,
            key: key.clone(),
            reason: kind.reason().to_owned(),
            schema: event.schema.to_owned(),
        });
        let at_ms = dice.int(scenario.start_ms, scenario.end_ms());
        messages.push((
            SourceMessage {
                channel: target,
                key,
                payload: Payload::Bad(BadMessage {
                    kind,
                    number,
                    schema: event.schema,
                    document,
                }),
                event_id: None,
                delivery: 1,
            },
            at_ms,
        ));
    }
    (messages, truth)
}
