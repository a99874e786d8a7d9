//! What waits on the broker for this instance: the pipeline consumer's
//! context, which reads librdkafka's statistics once a second.
//!
//! For every source partition this instance fetches, the statistics give
//! the last stable offset (the end a `read_committed` consumer, librdkafka's
//! default, may read to) as the latest fetch carried it, and the offset
//! after the last message handed to the pipeline. Their differences, summed,
//! are the messages the broker holds that this instance has not read: the
//! pipeline takes larger batches while they fill one
//! (`pipeline.batch_catch_up_messages`), and `touchline_unread_messages`
//! reports them. Unlike the group's committed lag, they do not count
//! messages already read and waiting to be written or derived.
//!
//! A report counts no more than waited when it was made (its end is the
//! latest fetch's), but it is up to a second old: the source messages the
//! pipeline read since are taken off it, so that a backlog just drained
//! does not keep batches large for another second.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::IntGauge;
use rdkafka::consumer::ConsumerContext;
use rdkafka::statistics::{Partition, Statistics};
use rdkafka::ClientContext;

/// How often librdkafka reports its statistics, in milliseconds.
pub const STATISTICS_INTERVAL_MS: &str = "1000";

/// The pipeline consumer's context.
pub struct Unread {
    /// The source topics; the derive-mark topic is not counted.
    sources: HashSet<String>,
    /// Unread messages as of the last report...
    reported: AtomicU64,
    /// ...and source messages the pipeline read since.
    read_since: AtomicU64,
    gauge: IntGauge,
}

impl Unread {
    pub fn new(sources: impl IntoIterator<Item = String>, gauge: IntGauge) -> Unread {
        Unread {
            sources: sources.into_iter().collect(),
            reported: AtomicU64::new(0),
            read_since: AtomicU64::new(0),
            gauge,
        }
    }

    /// Unread messages now: the last report's (0 before the first) less
    /// what the pipeline read since. Messages read between a report's
    /// making and its delivery count twice, so this errs low.
    pub fn messages(&self) -> u64 {
        let reported = self.reported.load(Ordering::Relaxed);
        reported.saturating_sub(self.read_since.load(Ordering::Relaxed))
    }

    /// Counts `messages` of the source topics the pipeline has read.
    pub fn read(&self, messages: u64) {
        self.read_since.fetch_add(messages, Ordering::Relaxed);
    }

    fn report(&self, messages: u64) {
        self.reported.store(messages, Ordering::Relaxed);
        self.read_since.store(0, Ordering::Relaxed);
        self.gauge.set(i64::try_from(messages).unwrap_or(i64::MAX));
    }
}

impl ClientContext for Unread {
    fn stats(&self, statistics: Statistics) {
        let messages: u64 = statistics
            .topics
            .iter()
            .filter(|(topic, _)| self.sources.contains(topic.as_str()))
            .flat_map(|(_, topic)| topic.partitions.values())
            .map(|partition| PartitionState::of(partition).unread())
            .sum();
        self.report(messages);
    }
}

impl ConsumerContext for Unread {}

/// The figures of one partition's report that say what waits on it.
#[derive(Debug, Clone, Copy)]
struct PartitionState<'a> {
    partition: i32,
    fetch_state: &'a str,
    /// After the last message handed to the pipeline; negative (invalid)
    /// before the first since the partition was assigned.
    app_offset: i64,
    /// The group's committed offset, negative when none.
    committed_offset: i64,
    /// The partition's start, end and last stable offset as fetches carried
    /// them, negative while unknown.
    lo_offset: i64,
    hi_offset: i64,
    ls_offset: i64,
}

impl<'a> PartitionState<'a> {
    fn of(partition: &'a Partition) -> PartitionState<'a> {
        PartitionState {
            partition: partition.partition,
            fetch_state: &partition.fetch_state,
            app_offset: partition.app_offset,
            committed_offset: partition.committed_offset,
            lo_offset: partition.lo_offset,
            hi_offset: partition.hi_offset,
            ls_offset: partition.ls_offset,
        }
    }

    /// Messages between where the pipeline stands and the end it may read
    /// to; 0 for a partition not being fetched (revoked, or librdkafka's
    /// internal unassigned partition, -1) or whose end is not known yet.
    ///
    /// Before the first message since assignment, the pipeline stands at
    /// the group's committed offset or, with none, at the partition's start
    /// (`auto.offset.reset = earliest`).
    fn unread(self) -> u64 {
        if self.partition < 0 || self.fetch_state != "active" {
            return 0;
        }
        let end = if self.ls_offset >= 0 {
            self.ls_offset
        } else {
            self.hi_offset
        };
        let at = [self.app_offset, self.committed_offset, self.lo_offset]
            .into_iter()
            .find(|offset| *offset >= 0);
        match at {
            Some(at) if end >= 0 => u64::try_from(end - at).unwrap_or(0),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// librdkafka's "invalid offset" (`RD_KAFKA_OFFSET_INVALID`).
    const INVALID: i64 = -1001;

    fn active() -> PartitionState<'static> {
        PartitionState {
            partition: 0,
            fetch_state: "active",
            app_offset: 400,
            committed_offset: 100,
            lo_offset: 0,
            hi_offset: 1_000,
            ls_offset: 1_000,
        }
    }

    #[test]
    fn what_was_read_since_a_report_is_taken_off_it() {
        let unread = Unread::new([], IntGauge::new("unread", "test").expect("a gauge"));
        assert_eq!(unread.messages(), 0, "nothing before the first report");
        unread.report(70_000);
        unread.read(20_000);
        assert_eq!(unread.messages(), 50_000);
        unread.read(60_000);
        assert_eq!(unread.messages(), 0);
        unread.report(30_000);
        assert_eq!(unread.messages(), 30_000, "a report starts the count again");
        assert_eq!(unread.gauge.get(), 30_000, "the gauge shows the report");
    }

    #[test]
    fn unread_is_the_end_less_what_the_pipeline_took() {
        assert_eq!(active().unread(), 600);
        let transactional = PartitionState {
            ls_offset: 900,
            ..active()
        };
        assert_eq!(
            transactional.unread(),
            500,
            "read_committed stops at the LSO"
        );
        let no_stable_offset = PartitionState {
            ls_offset: INVALID,
            ..active()
        };
        assert_eq!(no_stable_offset.unread(), 600);
    }

    #[test]
    fn before_the_first_message_the_pipeline_stands_at_the_commit_or_the_start() {
        let committed = PartitionState {
            app_offset: INVALID,
            ..active()
        };
        assert_eq!(committed.unread(), 900);
        let new_group = PartitionState {
            app_offset: INVALID,
            committed_offset: INVALID,
            lo_offset: 250,
            ..active()
        };
        assert_eq!(new_group.unread(), 750);
    }

    #[test]
    fn partitions_not_fetched_or_not_yet_known_count_nothing() {
        for state in [
            PartitionState {
                fetch_state: "stopped",
                ..active()
            },
            PartitionState {
                partition: -1,
                ..active()
            },
            PartitionState {
                hi_offset: INVALID,
                ls_offset: INVALID,
                ..active()
            },
            PartitionState {
                app_offset: INVALID,
                committed_offset: INVALID,
                lo_offset: INVALID,
                ..active()
            },
            PartitionState {
                app_offset: 1_200,
                ..active()
            },
        ] {
            assert_eq!(state.unread(), 0, "{state:?}");
        }
    }
}
