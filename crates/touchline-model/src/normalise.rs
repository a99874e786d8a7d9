//! Source record to unified event, by the rules of `SPEC.md` §2.
//!
//! Choices where the spec is silent (also in `docs/design/20261122_normalisation.md`):
//! - topic labels are compared after trimming and ignoring ASCII case;
//! - an app `client_ts` that does not parse as RFC 3339 counts as drifted, so
//!   `server_ts` is used;
//! - an app score property that is not a whole number is dropped like an
//!   out-of-scale score;
//! - events whose time is before 2000-01-01 or more than a day after the
//!   processing time are rejected, not clamped: such a time is a producer bug.

use chrono::DateTime;
use thiserror::Error;

use crate::event::{Channel, ScoreKind, Scores, Topic, UnifiedEvent};
use crate::source::{AppEvent, CallRecord, ChatbotEvent, SocialEvent, SourceRecord};

/// 2000-01-01T00:00:00Z in milliseconds: earlier event times are rejected.
pub const EARLIEST_VALID_MS: i64 = 946_684_800_000;
/// How far past the processing time an event time may lie.
pub const MAX_FUTURE_MS: i64 = 24 * 60 * 60 * 1000;
/// How far an app's device clock may be from the collector's and still be used.
pub const MAX_CLIENT_DRIFT_MS: i64 = 10 * 60 * 1000;

/// Why a decoded record cannot become a timeline event. Every variant is bad
/// data: the message goes to the dead-letter table with this reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NormaliseError {
    #[error("field `{field}` is empty; it is needed to identify the event or its contact")]
    EmptyId { field: &'static str },
    #[error(
        "event time {value_ms} ms since epoch (from `{field}`) is before 2000-01-01 \
         or more than a day after the processing time {now_ms}"
    )]
    TimestampOutOfRange {
        field: &'static str,
        value_ms: i64,
        now_ms: i64,
    },
}

impl NormaliseError {
    /// A short, stable reason for dead letters and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            NormaliseError::EmptyId { .. } => "empty_id",
            NormaliseError::TimestampOutOfRange { .. } => "timestamp_out_of_range",
        }
    }
}

/// Normalises one source record. `now_ms` is the processing time, against which
/// future event times are judged.
pub fn normalise(record: &SourceRecord, now_ms: i64) -> Result<UnifiedEvent, NormaliseError> {
    let event = match record {
        SourceRecord::Chatbot(e) => chatbot(e)?,
        SourceRecord::App(e) => app(e)?,
        SourceRecord::Social(e) => social(e)?,
        SourceRecord::CallCenter(e) => call_center(e)?,
    };
    check_time(event.0, event.1.occurred_at_ms, now_ms)?;
    Ok(event.1)
}

type Normalised = (&'static str, UnifiedEvent);

fn chatbot(e: &ChatbotEvent) -> Result<Normalised, NormaliseError> {
    non_empty("event_id", &e.event_id)?;
    non_empty("conversation_id", &e.conversation_id)?;
    let intent_topic = e
        .intent
        .as_deref()
        .map(|i| i.split('.').next().unwrap_or(i));
    let mut scores = ScoreBuilder::default();
    scores.csat(e.csat.map(i64::from));
    scores.sentiment(e.sentiment);
    Ok((
        "occurred_at",
        UnifiedEvent {
            event_id: e.event_id.clone(),
            channel: Channel::Chatbot,
            occurred_at_ms: e.occurred_at,
            topic: Topic::from_label(intent_topic),
            contact_id: Some(format!("chatbot:{}", e.conversation_id)),
            kind: e.event_type.clone(),
            scores: scores.scores,
            dropped_scores: scores.dropped,
        },
    ))
}

fn app(e: &AppEvent) -> Result<Normalised, NormaliseError> {
    non_empty("event_id", &e.event_id)?;
    let server_ms = e.server_ts.div_euclid(1000);
    let occurred_at_ms = DateTime::parse_from_rfc3339(e.client_ts.trim())
        .map(|t| t.timestamp_millis())
        .ok()
        .filter(|client_ms| (client_ms - server_ms).abs() <= MAX_CLIENT_DRIFT_MS)
        .unwrap_or(server_ms);
    let property = |name: &str| e.properties.get(name).map(String::as_str);
    let mut scores = ScoreBuilder::default();
    match e.event_name.as_str() {
        "feedback_submitted" => scores.csat_text(property("rating")),
        "nps_answered" => scores.nps_text(property("nps")),
        _ => {}
    }
    let contact_id = (e.event_name == "support_request").then(|| format!("app:{}", e.event_id));
    Ok((
        "client_ts/server_ts",
        UnifiedEvent {
            event_id: e.event_id.clone(),
            channel: Channel::App,
            occurred_at_ms,
            topic: Topic::from_label(property("topic")),
            contact_id,
            kind: e.event_name.clone(),
            scores: scores.scores,
            dropped_scores: scores.dropped,
        },
    ))
}

fn social(e: &SocialEvent) -> Result<Normalised, NormaliseError> {
    non_empty("id", &e.id)?;
    non_empty("thread_id", &e.thread_id)?;
    let platform = e.platform.to_ascii_lowercase();
    let mut scores = ScoreBuilder::default();
    if e.kind == "REVIEW" {
        scores.csat(e.rating.map(i64::from));
    }
    scores.sentiment(e.sentiment_label.as_deref().and_then(|label| match label {
        "POSITIVE" => Some(1.0),
        "NEUTRAL" => Some(0.0),
        "NEGATIVE" => Some(-1.0),
        _ => None,
    }));
    Ok((
        "created_at_epoch_s",
        UnifiedEvent {
            event_id: format!("{platform}:{}", e.id),
            channel: Channel::Social,
            occurred_at_ms: e.created_at_epoch_s.saturating_mul(1000),
            topic: Topic::from_label(e.topic.as_deref()),
            contact_id: Some(format!("social:{platform}:{}", e.thread_id)),
            kind: e.kind.clone(),
            scores: scores.scores,
            dropped_scores: scores.dropped,
        },
    ))
}

fn call_center(e: &CallRecord) -> Result<Normalised, NormaliseError> {
    non_empty("call_id", &e.call_id)?;
    let mut scores = ScoreBuilder::default();
    if let Some(survey) = &e.survey {
        scores.csat(survey.csat.map(i64::from));
        scores.ces(survey.ces.map(i64::from));
        scores.nps(survey.nps.map(i64::from));
    }
    Ok((
        "started_at",
        UnifiedEvent {
            event_id: format!("{}:{}", e.call_id, e.record_type),
            channel: Channel::CallCenter,
            occurred_at_ms: e.started_at,
            topic: Topic::from_label(Some(&e.queue)),
            contact_id: Some(format!("call_center:{}", e.call_id)),
            kind: e.record_type.clone(),
            scores: scores.scores,
            dropped_scores: scores.dropped,
        },
    ))
}

fn non_empty(field: &'static str, value: &str) -> Result<(), NormaliseError> {
    if value.trim().is_empty() {
        Err(NormaliseError::EmptyId { field })
    } else {
        Ok(())
    }
}

fn check_time(field: &'static str, value_ms: i64, now_ms: i64) -> Result<(), NormaliseError> {
    if value_ms < EARLIEST_VALID_MS || value_ms > now_ms.saturating_add(MAX_FUTURE_MS) {
        Err(NormaliseError::TimestampOutOfRange {
            field,
            value_ms,
            now_ms,
        })
    } else {
        Ok(())
    }
}

/// Collects scores, keeping those within their scale and noting the others.
#[derive(Default)]
struct ScoreBuilder {
    scores: Scores,
    dropped: Vec<ScoreKind>,
}

impl ScoreBuilder {
    fn scaled(&mut self, kind: ScoreKind, value: Option<i64>, min: i64, max: i64) -> Option<u8> {
        let value = value?;
        if (min..=max).contains(&value) {
            u8::try_from(value).ok()
        } else {
            self.dropped.push(kind);
            None
        }
    }

    fn csat(&mut self, value: Option<i64>) {
        self.scores.csat = self.scaled(ScoreKind::Csat, value, 1, 5);
    }

    fn ces(&mut self, value: Option<i64>) {
        self.scores.ces = self.scaled(ScoreKind::Ces, value, 1, 7);
    }

    fn nps(&mut self, value: Option<i64>) {
        self.scores.nps = self.scaled(ScoreKind::Nps, value, 0, 10);
    }

    fn csat_text(&mut self, value: Option<&str>) {
        let parsed = self.parse(ScoreKind::Csat, value);
        self.csat(parsed);
    }

    fn nps_text(&mut self, value: Option<&str>) {
        let parsed = self.parse(ScoreKind::Nps, value);
        self.nps(parsed);
    }

    fn parse(&mut self, kind: ScoreKind, value: Option<&str>) -> Option<i64> {
        let value = value?;
        let parsed = value.trim().parse().ok();
        if parsed.is_none() {
            self.dropped.push(kind);
        }
        parsed
    }

    fn sentiment(&mut self, value: Option<f32>) {
        let Some(value) = value else { return };
        if (-1.0..=1.0).contains(&value) {
            self.scores.sentiment = Some(value);
        } else {
            self.dropped.push(ScoreKind::Sentiment);
        }
    }
}

#[cfg(test)]
mod tests;
