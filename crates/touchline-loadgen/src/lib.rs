//! Touchline's load generator.
//!
//! [`generate`] simulates customers of one seeded [`Scenario`] living through
//! cross-channel journeys (a chatbot conversation about a refund, a call the
//! next day, a complaint on social, app sessions), and writes them as the four
//! source systems publish them: every upstream schema version, identifiers in
//! all their messy forms, device clocks that drift, scores outside their
//! scale. It adds at-least-once duplicates, out-of-order delivery and
//! malformed messages, and computes the [`GroundTruth`] of it all from its own
//! knowledge of what it simulated, independently of Touchline's rules, so the
//! pipeline can be checked against it. [`generate`] is pure: the same scenario
//! gives the same bytes on every machine.
//!
//! [`produce`] registers the upstream schemas in the schema registry and
//! produces the messages to Kafka, paced and optionally stopped early; the
//! truth of what was actually produced is then [`Generated::prefix`].
//!
//! What the stream holds, in short (details in each module):
//! - customers with 1-4 journeys on one topic each: chatbot conversations
//!   (login midway, handoffs, surveys), calls (completed, abandoned,
//!   callbacks, next-day surveys), social threads (mentions, direct messages
//!   with agent verification, reviews, the brand's replies), app support
//!   sessions; some single-channel, some with a gap over 7 days; plus app
//!   browsing, purchases and crashes that are no contact;
//! - every upstream schema version, mixed on one topic; chatbot and call
//!   center move to v2 during the period;
//! - with 6 customers or more, always: a household (two account holders
//!   sharing a device and a phone number), one email in three letter cases,
//!   one phone number in five formats, app clocks off by more and by less
//!   than 10 minutes, an invalid email and phone, out-of-scale CSAT, CES and
//!   NPS (see [`truth::HardCases`]);
//! - `round(duplicate_rate * events)` events delivered twice (the same
//!   bytes, later); `round(bad_rate * events)` malformed messages, cycling
//!   through [`BadKind`], each delivered once;
//! - delivery in order of publication plus transport delays, so topics
//!   interleave and a key's messages are mostly, not always, in order.
//!
//! Memory: the whole stream is held as JSON documents, about 4 KB per
//! message; 10,000 customers over 14 days are about 180,000 messages.
//!
//! ```no_run
//! # async fn run() -> Result<(), touchline_loadgen::LoadgenError> {
//! use touchline_loadgen::{generate, produce, ProduceOptions, Scenario};
//!
//! let scenario = Scenario::new(42, 1_000, 1_767_225_600_000, 14);
//! let generated = generate(&scenario)?;
//! let options = ProduceOptions::new("127.0.0.1:9092", "http://127.0.0.1:8081");
//! let report = produce(&generated, &options, |p| eprintln!("{}/{}", p.acknowledged, p.total)).await?;
//! generated.prefix(report.produced).truth.write_json("truth.json")?;
//! # Ok(())
//! # }
//! ```

mod bad;
mod delivery;
mod dice;
pub mod encode;
mod error;
mod message;
mod people;
mod produce;
mod scenario;
mod sim;
pub mod truth;

pub use encode::{Encoder, SchemaIds};
pub use error::LoadgenError;
pub use message::{BadKind, BadMessage, Payload, SourceMessage, INVALID_SYMBOL, UNKNOWN_SCHEMA_ID};
pub use produce::{produce, ProduceOptions, ProduceReport, Progress};
pub use scenario::{Scenario, DAY_MS, TAIL_DAYS};
pub use truth::GroundTruth;

/// A generated data set: the stream to produce, in order, and its truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// In production order.
    pub messages: Vec<SourceMessage>,
    /// The truth of all of `messages`.
    pub truth: GroundTruth,
}

impl Generated {
    /// The first `n` messages and the truth of just those: what the pipeline
    /// must show when production stopped after `n` messages. An event counts
    /// when at least one of its deliveries is among them (the pipeline sees
    /// it then); its `deliveries` and the duplicate count say how many.
    pub fn prefix(&self, n: usize) -> Generated {
        let messages = self.messages[..n.min(self.messages.len())].to_vec();
        let truth = self.truth.restrict(&messages);
        Generated { messages, truth }
    }
}

/// Simulates `scenario`. Pure and deterministic: no clock, no I/O, no
/// randomness but the scenario's seed. Fails only on an invalid scenario
/// ([`Scenario::validate`]).
///
/// With at least six customers the hard cases of `SPEC.md` §2-3 are always
/// among the events (see [`truth::HardCases`]). Journeys more than 7 days
/// apart on one topic need `days` of 6 or more to fit in the window.
pub fn generate(scenario: &Scenario) -> Result<Generated, LoadgenError> {
    scenario.validate()?;
    let mut sim = sim::Sim::new(scenario);
    let households = sim.run();
    let sim::Sim {
        mut dice,
        mut ids,
        events,
        ..
    } = sim;
    let duplicates = delivery::share(scenario.duplicate_rate, events.len());
    let bad_count = delivery::share(scenario.bad_rate, events.len());
    let (malformed, dead_letters) =
        bad::malformed(&mut dice, &mut ids, scenario, &events, bad_count);
    let (messages, truth_events) = delivery::stream(&mut dice, events, duplicates, malformed);
    let truth = GroundTruth::build(scenario, truth_events, dead_letters, households, &messages);
    Ok(Generated { messages, truth })
}
