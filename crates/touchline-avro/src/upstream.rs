//! The upstream schemas, every version, as the source systems publish them.
//!
//! The files live in the repository's `schemas/upstream/`; they are owned by
//! the source systems and copied here unchanged. The newest version of each
//! channel is Touchline's reader schema.

use touchline_model::Channel;

/// One published version of a channel's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamSchema {
    pub channel: Channel,
    /// Version label as in the file name, e.g. `chatbot.v2`.
    pub name: &'static str,
    /// The schema text.
    pub text: &'static str,
}

macro_rules! upstream {
    ($channel:expr, $name:literal) => {
        UpstreamSchema {
            channel: $channel,
            name: $name,
            text: include_str!(concat!("../../../schemas/upstream/", $name, ".avsc")),
        }
    };
}

/// Every upstream version, oldest first within a channel.
pub const ALL: [UpstreamSchema; 6] = [
    upstream!(Channel::Chatbot, "chatbot.v1"),
    upstream!(Channel::Chatbot, "chatbot.v2"),
    upstream!(Channel::App, "app.v1"),
    upstream!(Channel::Social, "social.v1"),
    upstream!(Channel::CallCenter, "callcenter.v1"),
    upstream!(Channel::CallCenter, "callcenter.v2"),
];

/// The versions of one channel, oldest first.
pub fn versions(channel: Channel) -> impl Iterator<Item = &'static UpstreamSchema> {
    ALL.iter().filter(move |s| s.channel == channel)
}

/// The reader schema of a channel: its newest version.
pub fn reader(channel: Channel) -> &'static UpstreamSchema {
    versions(channel)
        .last()
        .expect("every channel has at least one upstream schema")
}

/// Looks a version up by its label, e.g. `callcenter.v1`.
pub fn by_name(name: &str) -> Option<&'static UpstreamSchema> {
    ALL.iter().find(|s| s.name == name)
}
