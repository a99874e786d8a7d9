//! The unified customer event: one timeline row per distinct source event.

use std::fmt;

/// The channel a customer used. The string forms are the `channel` values of
/// every ClickHouse view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Chatbot,
    App,
    Social,
    CallCenter,
}

impl Channel {
    /// Every channel, in the order of their ClickHouse enum codes.
    pub const ALL: [Channel; 4] = [
        Channel::Chatbot,
        Channel::App,
        Channel::Social,
        Channel::CallCenter,
    ];

    /// The name used in the timeline and in contact ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Chatbot => "chatbot",
            Channel::App => "app",
            Channel::Social => "social",
            Channel::CallCenter => "call_center",
        }
    }

    /// The topic the channel's source system publishes to (`SPEC.md` §1).
    pub fn source_topic(self) -> &'static str {
        match self {
            Channel::Chatbot => "cx.chatbot.events",
            Channel::App => "cx.app.events",
            Channel::Social => "cx.social.events",
            Channel::CallCenter => "cx.callcenter.records",
        }
    }

    /// The channel of a ClickHouse `Enum8` code.
    pub fn from_code(code: i8) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Stable code of the channel in ClickHouse `Enum8` columns.
    pub fn code(self) -> i8 {
        match self {
            Channel::Chatbot => 1,
            Channel::App => 2,
            Channel::Social => 3,
            Channel::CallCenter => 4,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a contact is about. Anything the source calls something else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    Billing,
    Delivery,
    Account,
    Product,
    Technical,
    Other,
}

impl Topic {
    /// Every topic, in the order of their ClickHouse enum codes.
    pub const ALL: [Topic; 6] = [
        Topic::Billing,
        Topic::Delivery,
        Topic::Account,
        Topic::Product,
        Topic::Technical,
        Topic::Other,
    ];

    /// Maps a source label to a topic: surrounding white space and letter case
    /// are ignored; a missing label or one outside the list is `Other`.
    pub fn from_label(label: Option<&str>) -> Topic {
        let Some(label) = label else {
            return Topic::Other;
        };
        let label = label.trim();
        Topic::ALL
            .into_iter()
            .find(|topic| topic.as_str().eq_ignore_ascii_case(label))
            .unwrap_or(Topic::Other)
    }

    /// The name used in the timeline.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Billing => "billing",
            Topic::Delivery => "delivery",
            Topic::Account => "account",
            Topic::Product => "product",
            Topic::Technical => "technical",
            Topic::Other => "other",
        }
    }

    /// The topic of a ClickHouse `Enum8` code.
    pub fn from_code(code: i8) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Stable code of the topic in ClickHouse `Enum8` columns.
    pub fn code(self) -> i8 {
        match self {
            Topic::Billing => 1,
            Topic::Delivery => 2,
            Topic::Account => 3,
            Topic::Product => 4,
            Topic::Technical => 5,
            Topic::Other => 6,
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scores an event carries, each within its scale or absent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Scores {
    /// Customer satisfaction, 1..=5.
    pub csat: Option<u8>,
    /// Customer effort, 1..=7 (7 = very easy).
    pub ces: Option<u8>,
    /// Net promoter answer, 0..=10.
    pub nps: Option<u8>,
    /// Sentiment, -1..=1.
    pub sentiment: Option<f32>,
}

/// A score the source sent outside its scale; the event is kept without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScoreKind {
    Csat,
    Ces,
    Nps,
    Sentiment,
}

impl ScoreKind {
    /// The score's name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreKind::Csat => "csat",
            ScoreKind::Ces => "ces",
            ScoreKind::Nps => "nps",
            ScoreKind::Sentiment => "sentiment",
        }
    }
}

/// One distinct source event on the unified customer timeline (`SPEC.md` §2).
#[derive(Debug, Clone, PartialEq)]
pub struct UnifiedEvent {
    /// Unique across channels; a second delivery of the same id is a duplicate.
    pub event_id: String,
    pub channel: Channel,
    /// When it happened, milliseconds since the Unix epoch, UTC.
    pub occurred_at_ms: i64,
    pub topic: Topic,
    /// The contact the event belongs to, if any (`SPEC.md` §4).
    pub contact_id: Option<String>,
    /// The source's own name for what happened: chatbot `event_type`, app
    /// `event_name`, social `kind`, call-center `record_type`.
    pub kind: String,
    pub scores: Scores,
    /// Scores the source sent outside their scale and that were dropped.
    pub dropped_scores: Vec<ScoreKind>,
}
