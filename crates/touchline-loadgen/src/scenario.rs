//! What to simulate: the knobs of one generated data set.

use serde::{Deserialize, Serialize};

use crate::error::LoadgenError;

/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// One hour in milliseconds.
pub const HOUR_MS: i64 = 60 * 60 * 1000;
/// One minute in milliseconds.
pub const MINUTE_MS: i64 = 60 * 1000;

/// Days after the simulated period during which follow-ups (a call the day
/// after a chat, a survey the day after a call) may still happen.
pub const TAIL_DAYS: u32 = 2;

/// 2000-01-01T00:00:00Z: the pipeline rejects earlier event times.
const EARLIEST_START_MS: i64 = 946_684_800_000;
/// 9000-01-01T00:00:00Z: far enough for any simulation, near enough that
/// every date stays printable.
const LATEST_START_MS: i64 = 221_845_392_000_000;
/// Upper bound on simulated days, to keep a typo from asking for centuries.
const MAX_DAYS: u32 = 3660;

/// The knobs of one generated data set. The same scenario always gives the
/// same messages and the same truth, byte for byte, on every machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Seed of the random generator.
    pub seed: u64,
    /// How many customers to simulate.
    pub customers: usize,
    /// Start of the simulated period, milliseconds since the Unix epoch (UTC).
    pub start_ms: i64,
    /// Days over which customer journeys start. Follow-ups run up to
    /// [`TAIL_DAYS`] days longer, so every event time lies in
    /// [`Scenario::start_ms`, [`Scenario::end_ms`]].
    pub days: u32,
    /// Share of distinct events delivered a second time (the same bytes, later
    /// in the stream), 0..=1: `round(duplicate_rate * events)` duplicates.
    pub duplicate_rate: f64,
    /// Share of malformed messages added on top of the events, 0..=1, relative
    /// to the number of distinct events: `round(bad_rate * events)` of them.
    pub bad_rate: f64,
}

impl Scenario {
    /// A scenario with the default rates (2% duplicates, 0.5% malformed).
    pub fn new(seed: u64, customers: usize, start_ms: i64, days: u32) -> Self {
        Scenario {
            seed,
            customers,
            start_ms,
            days,
            duplicate_rate: 0.02,
            bad_rate: 0.005,
        }
    }

    /// The start that makes a simulation of `days` days end at `now_ms`:
    /// `now - days - TAIL_DAYS days`, so that no event lies in the future.
    pub fn start_ending_at(now_ms: i64, days: u32) -> i64 {
        now_ms.saturating_sub(i64::from(days.saturating_add(TAIL_DAYS)) * DAY_MS)
    }

    /// The latest possible event time: `start_ms + (days + TAIL_DAYS) days`.
    pub fn end_ms(&self) -> i64 {
        self.start_ms
            .saturating_add(i64::from(self.days.saturating_add(TAIL_DAYS)) * DAY_MS)
    }

    /// Checks that the scenario can be simulated; the message of an error
    /// names the setting (as the CLI flag) and the accepted values.
    pub fn validate(&self) -> Result<(), LoadgenError> {
        let invalid = |setting: &'static str, reason: String| {
            Err(LoadgenError::InvalidScenario { setting, reason })
        };
        if self.days == 0 || self.days > MAX_DAYS {
            return invalid(
                "--days",
                format!("is {}, must be between 1 and {MAX_DAYS}", self.days),
            );
        }
        if !(EARLIEST_START_MS..=LATEST_START_MS).contains(&self.start_ms) {
            return invalid(
                "--start",
                format!(
                    "is {} ms since the epoch; it must be in the years 2000 to 8999, \
                     because the pipeline rejects event times before 2000",
                    self.start_ms
                ),
            );
        }
        for (setting, rate) in [
            ("--duplicate-rate", self.duplicate_rate),
            ("--bad-rate", self.bad_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return invalid(setting, format!("is {rate}, must be between 0 and 1"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_flag() {
        let good = Scenario::new(1, 10, 1_767_225_600_000, 7);
        assert!(good.validate().is_ok());
        let cases = [
            (
                Scenario {
                    days: 0,
                    ..good.clone()
                },
                "--days",
            ),
            (
                Scenario {
                    start_ms: 0,
                    ..good.clone()
                },
                "--start",
            ),
            (
                Scenario {
                    duplicate_rate: 1.5,
                    ..good.clone()
                },
                "--duplicate-rate",
            ),
            (
                Scenario {
                    bad_rate: f64::NAN,
                    ..good.clone()
                },
                "--bad-rate",
            ),
        ];
        for (scenario, flag) in cases {
            let error = scenario.validate().expect_err(flag).to_string();
            assert!(error.contains(flag), "{error}");
        }
    }

    #[test]
    fn start_ending_at_leaves_room_for_the_tail() {
        let now = 1_767_225_600_000;
        let scenario = Scenario::new(1, 10, Scenario::start_ending_at(now, 5), 5);
        assert_eq!(scenario.end_ms(), now);
    }
}
