//! Call-center records (`callcenter.v1` with `ani`, `callcenter.v2` with
//! `caller_number` and `recording_consent`; key call_id).

use serde_json::{json, Map, Value};
use touchline_model::{Channel, Topic};

use super::{rating, EventFacts, Outcome, RawScores, Sim};
use crate::people::{invalid_phone, Person, PhoneStyle};
use crate::scenario::HOUR_MS;
use crate::truth::{ContactFacts, IdentifierUse};

/// How a scripted call must go; `None` leaves it to chance.
#[derive(Debug, Clone)]
pub(crate) struct CallOpts {
    pub(crate) topic: Topic,
    /// Writer schema version of every record of the call.
    pub(crate) schema: Option<&'static str>,
    /// Forces the caller's own number, in this format.
    pub(crate) phone: Option<PhoneStyle>,
    /// Forces a withheld caller id (`anonymous`).
    pub(crate) withheld: bool,
    /// Whether the caller verifies their account in the IVR.
    pub(crate) verify: Option<bool>,
    /// Whether a post-call survey follows the next day.
    pub(crate) survey: Option<bool>,
    /// Whether the caller hangs up in the queue.
    pub(crate) abandon: Option<bool>,
    /// Forces a survey with these (csat, ces, nps) answers.
    pub(crate) survey_scores: Option<(Option<i32>, Option<i32>, Option<i32>)>,
}

impl CallOpts {
    pub(crate) fn new(topic: Topic) -> Self {
        CallOpts {
            topic,
            schema: None,
            phone: None,
            withheld: false,
            verify: None,
            survey: None,
            abandon: None,
            survey_scores: None,
        }
    }
}

/// One record of a call.
struct Record {
    record_type: &'static str,
    started_at: i64,
    wait: i64,
    talk: i64,
    hold: i64,
    wrap: i64,
    transfers: i64,
    agent: Option<String>,
    disposition: Option<&'static str>,
    survey: Option<(Option<i32>, Option<i32>, Option<i32>)>,
}

impl Record {
    fn new(record_type: &'static str, started_at: i64) -> Self {
        Record {
            record_type,
            started_at,
            wait: 0,
            talk: 0,
            hold: 0,
            wrap: 0,
            transfers: 0,
            agent: None,
            disposition: None,
            survey: None,
        }
    }

    fn end_ms(&self) -> i64 {
        self.started_at + (self.wait + self.talk + self.hold + self.wrap) * 1000
    }
}

impl Sim<'_> {
    /// One call of `person` starting at `t0`, with its later records.
    pub(crate) fn call(&mut self, person: &Person, t0: i64, opts: &CallOpts) -> Outcome {
        let d = &mut self.dice;
        let call_id = self.ids.draw(d, |d| format!("CA{}", d.digits(10)));
        let d = &mut self.dice;
        // The carrier's caller id: withheld now and then, and always for
        // people whose number the simulation does not know.
        let (number, number_used) = match (opts.phone, person.phone) {
            _ if opts.withheld => ("anonymous".to_owned(), invalid_phone("anonymous")),
            (Some(style), Some(phone)) => phone.used(style),
            (None, Some(phone)) if d.chance(0.95) => phone.used(d.weighted(&[
                (PhoneStyle::Dashed, 40),
                (PhoneStyle::IntlSpaced, 25),
                (PhoneStyle::CarrierDigits, 25),
                (PhoneStyle::E164, 10),
            ])),
            _ => ("anonymous".to_owned(), invalid_phone("anonymous")),
        };
        let verified = opts.verify.unwrap_or_else(|| d.chance(0.55));
        let account = verified.then(|| person.account_used(d)).flatten();
        // The IVR routes by menu choice; there is no product queue, and a few
        // callers land in the general queue whatever their issue.
        let (queue, queue_topic) = match opts.topic {
            Topic::Product | Topic::Other => (
                d.pick(&["general", "general", "sales"]).to_owned(),
                Topic::Other,
            ),
            _ if d.chance(0.05) => ("general".to_owned(), Topic::Other),
            topic => (super::topic_label(d, topic, &["general"]), topic),
        };

        let mut records = Vec::new();
        let abandoned = opts.abandon.unwrap_or_else(|| d.chance(0.15));
        let agent = format!("agent-{:03}", d.int(1, 180));
        let resolved;
        if abandoned {
            let mut record = Record::new("CALL_ABANDONED", t0);
            record.wait = d.int(30, 900);
            resolved = false;
            let at = record.end_ms() + d.int(5_000, 60_000);
            records.push(record);
            if d.chance(0.4) {
                records.push(Record::new("CALLBACK_SCHEDULED", at));
            }
        } else {
            let mut record = Record::new("CALL_COMPLETED", t0);
            record.wait = d.int(5, 600);
            record.talk = d.int(60, 1_500);
            record.hold = if d.chance(0.5) { 0 } else { d.int(10, 300) };
            record.wrap = d.int(15, 180);
            record.transfers = d.weighted(&[(0, 75), (1, 20), (2, 5)]);
            record.agent = Some(agent.clone());
            let disposition = d.weighted(&[
                ("RESOLVED", 55),
                ("UNRESOLVED", 20),
                ("ESCALATED", 10),
                ("FOLLOW_UP", 15),
            ]);
            record.disposition = Some(disposition);
            resolved = disposition == "RESOLVED";
            let end = record.end_ms();
            records.push(record);
            if disposition == "FOLLOW_UP" && d.chance(0.5) {
                let mut callback = Record::new("CALLBACK_SCHEDULED", end + d.int(1_000, 30_000));
                callback.agent = Some(agent.clone());
                records.push(callback);
            }
            if let Some(scores) = opts.survey_scores {
                let mut survey = Record::new("SURVEY", t0 + d.int(18 * HOUR_MS, 30 * HOUR_MS));
                survey.survey = Some(scores);
                survey.agent = Some(agent.clone());
                records.push(survey);
            } else if opts.survey.unwrap_or_else(|| d.chance(0.3)) {
                // The post-call survey is answered the next day.
                let mut survey = Record::new("SURVEY", t0 + d.int(18 * HOUR_MS, 30 * HOUR_MS));
                let mut score = |present: f64, min, max, out: &[i32]| {
                    d.chance(present)
                        .then(|| rating(d, min, max, resolved, out))
                };
                let csat = score(0.85, 1, 5, &[0, 6]);
                let ces = score(0.6, 1, 7, &[0, 8]);
                let nps = score(0.7, 0, 10, &[11]);
                let csat = if csat.is_none() && ces.is_none() && nps.is_none() {
                    Some(rating(d, 1, 5, resolved, &[0, 6]))
                } else {
                    csat
                };
                survey.survey = Some((csat, ces, nps));
                survey.agent = Some(agent.clone());
                records.push(survey);
            }
        }
        let consent = d.chance(0.8);

        let contact = format!("call_center:{call_id}");
        let mut end_ms = t0;
        for record in records {
            let d = &mut self.dice;
            let v2 = match opts.schema {
                Some(schema) => schema == "callcenter.v2",
                None if record.started_at >= self.call_cutover_ms => d.chance(0.7),
                None => d.chance(0.05),
            };
            let schema = if v2 { "callcenter.v2" } else { "callcenter.v1" };
            let mut identifiers: Vec<IdentifierUse> = vec![number_used.clone()];
            if let Some((_, used)) = &account {
                identifiers.push(used.clone());
            }
            let mut doc = Map::new();
            doc.insert("call_id".into(), json!(call_id));
            doc.insert("record_type".into(), json!(record.record_type));
            doc.insert("started_at".into(), json!(record.started_at));
            doc.insert(
                if v2 { "caller_number" } else { "ani" }.into(),
                json!(number),
            );
            doc.insert(
                "account_id".into(),
                json!(account.as_ref().map(|(raw, _)| raw)),
            );
            doc.insert("queue".into(), json!(queue));
            doc.insert("agent_id".into(), json!(record.agent));
            doc.insert("wait_seconds".into(), json!(record.wait));
            doc.insert("talk_seconds".into(), json!(record.talk));
            doc.insert("hold_seconds".into(), json!(record.hold));
            doc.insert("wrap_seconds".into(), json!(record.wrap));
            doc.insert("transfers".into(), json!(record.transfers));
            doc.insert("disposition".into(), json!(record.disposition));
            doc.insert(
                "survey".into(),
                record.survey.map_or(
                    Value::Null,
                    |(csat, ces, nps)| json!({"csat": csat, "ces": ces, "nps": nps}),
                ),
            );
            if v2 {
                doc.insert("recording_consent".into(), json!(consent));
            }
            let (csat, ces, nps) = record.survey.unwrap_or_default();
            let call_record = matches!(record.record_type, "CALL_COMPLETED" | "CALL_ABANDONED");
            let facts = EventFacts {
                event_id: format!("{call_id}:{}", record.record_type),
                channel: Channel::CallCenter,
                occurred_at_ms: record.started_at,
                topic: queue_topic,
                contact_id: Some(contact.clone()),
                kind: record.record_type.to_owned(),
                schema,
                scores: RawScores {
                    csat,
                    ces,
                    nps,
                    sentiment: None,
                },
                client_offset_ms: None,
                identifiers,
                contact: ContactFacts {
                    role: None,
                    resolves: call_record.then(|| record.disposition == Some("RESOLVED")),
                    wait_seconds: call_record.then(|| u32::try_from(record.wait).unwrap_or(0)),
                    handle_seconds: call_record.then(|| {
                        u32::try_from(record.talk + record.hold + record.wrap).unwrap_or(0)
                    }),
                },
            };
            // The platform exports a record once the call (or survey) is over.
            let published = record.end_ms() + d.int(1_000, 120_000);
            // The customer is done when the call is; a survey or callback
            // comes later without them waiting for it.
            if matches!(record.record_type, "CALL_COMPLETED" | "CALL_ABANDONED") {
                end_ms = end_ms.max(record.end_ms());
            }
            self.emit(person, &call_id, Value::Object(doc), facts, published);
        }
        Outcome { end_ms, resolved }
    }
}
