//! The omnichannel metrics of `SPEC.md` §6, as pure folds: a day and channel
//! ([`ChannelDay`]), a day across channels ([`ConsistencyDay`]) and a
//! customer ([`CustomerStats`]). The pipeline recomputes each from all of its
//! inputs whenever one of them changes, so the result never depends on the
//! order or the number of times events arrived.
//!
//! Choices where the spec is silent:
//! - quantiles are nearest-rank: the smallest value with at least that share
//!   of the values at or below it (no interpolation);
//! - handle time is over completed calls (talk + hold + wrap), abandon rate
//!   over all calls;
//! - a channel's CSAT % and resolution rate, and so the gaps, are in points
//!   (0..100).

use crate::event::{Channel, Scores};

/// A channel qualifies for a day's gap with at least this many CSAT
/// responses (CSAT gap) or contacts (resolution gap).
pub const GAP_MINIMUM: u64 = 10;

/// What a contact adds to its day and channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContactOutcome {
    pub resolved: bool,
    pub handed_off: bool,
    pub abandoned: bool,
    pub first_response_ms: Option<i64>,
    pub handle_seconds: Option<u32>,
}

/// The metrics of one channel on one UTC day: contacts by the day they
/// started, scores by the day of the event that carries them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelDay {
    pub contacts: u64,
    pub resolved_contacts: u64,
    /// Contacts with a first-response time, and its mean and quantiles.
    pub frt_responses: u64,
    pub frt_sum_s: f64,
    pub frt_p50_s: Option<f64>,
    pub frt_p90_s: Option<f64>,
    /// Calls (call-center contacts), those completed with a handle time, the
    /// sum of those, and the abandoned ones.
    pub calls: u64,
    pub handled_calls: u64,
    pub handle_sum_s: f64,
    pub abandoned_calls: u64,
    /// Chatbot conversations, and those handed off to an agent.
    pub conversations: u64,
    pub handed_off: u64,
    pub csat_responses: u64,
    /// CSAT responses of 4 or 5.
    pub csat_top2: u64,
    pub nps_responses: u64,
    /// NPS answers of 9 or 10, and of 0 to 6.
    pub nps_promoters: u64,
    pub nps_detractors: u64,
    pub ces_responses: u64,
    pub ces_sum: f64,
    pub sentiment_responses: u64,
    pub sentiment_sum: f64,
}

impl ChannelDay {
    /// The metrics of `contacts` (started that day on that channel) and
    /// `scores` (of events that day on that channel).
    pub fn of<'a>(
        channel: Channel,
        contacts: impl IntoIterator<Item = &'a ContactOutcome>,
        scores: impl IntoIterator<Item = &'a Scores>,
    ) -> ChannelDay {
        let mut day = ChannelDay::default();
        let mut responses_ms = Vec::new();
        for c in contacts {
            day.contacts += 1;
            day.resolved_contacts += u64::from(c.resolved);
            if let Some(ms) = c.first_response_ms {
                responses_ms.push(ms);
            }
            match channel {
                Channel::CallCenter => {
                    day.calls += 1;
                    day.abandoned_calls += u64::from(c.abandoned);
                    if let (false, Some(s)) = (c.abandoned, c.handle_seconds) {
                        day.handled_calls += 1;
                        day.handle_sum_s += f64::from(s);
                    }
                }
                Channel::Chatbot => {
                    day.conversations += 1;
                    day.handed_off += u64::from(c.handed_off);
                }
                Channel::App | Channel::Social => {}
            }
        }
        responses_ms.sort_unstable();
        day.frt_responses = responses_ms.len() as u64;
        day.frt_sum_s = responses_ms.iter().map(|ms| seconds(*ms)).sum();
        day.frt_p50_s = nearest_rank(&responses_ms, 0.5).map(seconds);
        day.frt_p90_s = nearest_rank(&responses_ms, 0.9).map(seconds);
        for s in scores {
            if let Some(csat) = s.csat {
                day.csat_responses += 1;
                day.csat_top2 += u64::from(csat >= 4);
            }
            if let Some(nps) = s.nps {
                day.nps_responses += 1;
                day.nps_promoters += u64::from(nps >= 9);
                day.nps_detractors += u64::from(nps <= 6);
            }
            if let Some(ces) = s.ces {
                day.ces_responses += 1;
                day.ces_sum += f64::from(ces);
            }
            if let Some(sentiment) = s.sentiment {
                day.sentiment_responses += 1;
                day.sentiment_sum += f64::from(sentiment);
            }
        }
        day
    }

    /// Share of CSAT responses of 4 or 5, in points; `None` without responses.
    pub fn csat_pct(&self) -> Option<f64> {
        percent(self.csat_top2, self.csat_responses)
    }

    /// Share of contacts resolved, in points; `None` without contacts.
    pub fn resolution_pct(&self) -> Option<f64> {
        percent(self.resolved_contacts, self.contacts)
    }

    /// Whether the day has anything to show.
    pub fn is_empty(&self) -> bool {
        self.contacts == 0
            && self.csat_responses == 0
            && self.nps_responses == 0
            && self.ces_responses == 0
            && self.sentiment_responses == 0
    }
}

/// What a journey adds to the day it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JourneyOutcome {
    pub contacts: usize,
    pub channel_count: usize,
    pub channel_switches: usize,
    pub one_contact_resolution: bool,
}

/// The omnichannel consistency of one UTC day: its journeys (by start day)
/// and the gaps between its channels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsistencyDay {
    pub journeys: u64,
    /// Journeys on two or more channels.
    pub multichannel_journeys: u64,
    pub ocr_journeys: u64,
    /// Journeys with two or more contacts.
    pub repeat_journeys: u64,
    pub channel_switches: u64,
    /// Highest minus lowest CSAT % among channels with at least
    /// [`GAP_MINIMUM`] responses; `None` unless two qualify.
    pub csat_gap_pp: Option<f64>,
    /// The same over resolution rates, among channels with at least
    /// [`GAP_MINIMUM`] contacts.
    pub resolution_gap_pp: Option<f64>,
}

impl ConsistencyDay {
    /// The consistency of a day from its journeys and its channels' metrics.
    pub fn of<'a>(
        journeys: impl IntoIterator<Item = &'a JourneyOutcome>,
        channels: &[ChannelDay],
    ) -> ConsistencyDay {
        let mut day = ConsistencyDay::default();
        for j in journeys {
            day.journeys += 1;
            day.multichannel_journeys += u64::from(j.channel_count >= 2);
            day.ocr_journeys += u64::from(j.one_contact_resolution);
            day.repeat_journeys += u64::from(j.contacts >= 2);
            day.channel_switches += j.channel_switches as u64;
        }
        day.csat_gap_pp = gap(channels
            .iter()
            .filter(|c| c.csat_responses >= GAP_MINIMUM)
            .filter_map(ChannelDay::csat_pct));
        day.resolution_gap_pp = gap(channels
            .iter()
            .filter(|c| c.contacts >= GAP_MINIMUM)
            .filter_map(ChannelDay::resolution_pct));
        day
    }
}

/// One customer across channels (`SPEC.md` §6, per customer).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerStats {
    /// Channels of the customer's events, in channel order.
    pub channels: Vec<Channel>,
    pub contacts: u64,
    pub journeys: u64,
    /// Highest minus lowest per-channel mean CSAT (on the 1..5 scale) over
    /// the customer's scored events; `None` unless two channels were rated.
    pub csat_range: Option<f64>,
}

impl CustomerStats {
    /// The stats of a customer from the channels of its events, its number
    /// of contacts and journeys, and its CSAT answers with their channel.
    pub fn of(
        channels: impl IntoIterator<Item = Channel>,
        contacts: u64,
        journeys: u64,
        csat: impl IntoIterator<Item = (Channel, u8)>,
    ) -> CustomerStats {
        let mut used: Vec<Channel> = channels.into_iter().collect();
        used.sort_unstable();
        used.dedup();
        let mut sums = [(0u64, 0u64); 4];
        for (channel, score) in csat {
            let slot = &mut sums[channel_slot(channel)];
            slot.0 += u64::from(score);
            slot.1 += 1;
        }
        #[allow(clippy::cast_precision_loss)]
        let means = sums
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(sum, n)| *sum as f64 / *n as f64);
        CustomerStats {
            channels: used,
            contacts,
            journeys,
            csat_range: gap(means),
        }
    }
}

fn channel_slot(channel: Channel) -> usize {
    Channel::ALL
        .iter()
        .position(|c| *c == channel)
        .unwrap_or_default()
}

/// Highest minus lowest of `values`; `None` for fewer than two.
fn gap(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut count = 0;
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        count += 1;
        low = low.min(v);
        high = high.max(v);
    }
    (count >= 2).then_some(high - low)
}

#[allow(clippy::cast_precision_loss)]
fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

/// The nearest-rank `q` quantile of `sorted`.
pub fn nearest_rank(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[allow(clippy::cast_precision_loss)]
fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests;
