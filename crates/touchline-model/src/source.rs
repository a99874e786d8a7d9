//! The records the source systems publish, one struct per channel.
//!
//! Each struct mirrors the newest upstream Avro schema of its channel (the
//! reader schema), so that every older writer version resolves into it. Field
//! names follow the Avro field names so that a serde-based decoder can fill
//! them. Enum symbols are kept as strings: an unknown symbol is the decoder's
//! concern, and the normaliser only compares them.

use std::collections::HashMap;

use serde::Deserialize;

/// A decoded record from one of the four source topics.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceRecord {
    /// `cx.chatbot.events`
    Chatbot(ChatbotEvent),
    /// `cx.app.events`
    App(AppEvent),
    /// `cx.social.events`
    Social(SocialEvent),
    /// `cx.callcenter.records`
    CallCenter(CallRecord),
}

/// One event of a chatbot conversation (`chatbot.v2`; `chatbot.v1` resolves into it).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct ChatbotEvent {
    pub event_id: String,
    pub conversation_id: String,
    /// Milliseconds since the Unix epoch, UTC.
    pub occurred_at: i64,
    pub event_type: String,
    pub visitor_id: String,
    pub user: Option<ChatUser>,
    pub surface: String,
    pub intent: Option<String>,
    pub intent_confidence: Option<f32>,
    pub text: Option<String>,
    pub resolved: Option<bool>,
    pub csat: Option<i32>,
    pub sentiment: Option<f32>,
    pub language: Option<String>,
    pub bot_version: String,
}

/// The logged-in user of a chatbot conversation.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct ChatUser {
    pub account_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// An analytics event from the mobile and web apps (`app.v1`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct AppEvent {
    pub event_id: String,
    pub event_name: String,
    /// ISO-8601 with offset, from the device clock (may drift).
    pub client_ts: String,
    /// Microseconds since the Unix epoch, UTC, from the collector.
    pub server_ts: i64,
    pub device_id: String,
    pub user_id: Option<String>,
    pub platform: String,
    pub app_version: String,
    pub screen: Option<String>,
    pub traits: HashMap<String, String>,
    pub properties: HashMap<String, String>,
}

/// A message captured by the social engagement tool (`social.v1`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct SocialEvent {
    pub id: String,
    pub platform: String,
    pub kind: String,
    pub thread_id: String,
    pub in_reply_to: Option<String>,
    pub author_handle: String,
    pub author_is_brand: bool,
    pub created_at_epoch_s: i64,
    pub text: String,
    pub lang: Option<String>,
    pub sentiment_label: Option<String>,
    pub rating: Option<i32>,
    pub topic: Option<String>,
    pub resolved: Option<bool>,
    pub linked_customer: Option<LinkedCustomer>,
}

/// The customer an agent verified in a social direct message.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct LinkedCustomer {
    pub account_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// A call detail record or post-call survey (`callcenter.v2`; `callcenter.v1`
/// resolves into it through the alias `ani` of `caller_number`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct CallRecord {
    pub call_id: String,
    pub record_type: String,
    /// Milliseconds since the Unix epoch, UTC.
    pub started_at: i64,
    pub caller_number: String,
    pub account_id: Option<String>,
    pub queue: String,
    pub agent_id: Option<String>,
    pub wait_seconds: i32,
    pub talk_seconds: i32,
    pub hold_seconds: i32,
    pub wrap_seconds: i32,
    pub transfers: i32,
    pub disposition: Option<String>,
    pub survey: Option<Survey>,
    pub recording_consent: bool,
}

/// A post-call survey.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Survey {
    pub csat: Option<i32>,
    pub ces: Option<i32>,
    pub nps: Option<i32>,
}
