//! The metrics of `SPEC.md` §6, one table per rule.

use super::*;

fn contact(resolved: bool, first_response_ms: Option<i64>) -> ContactOutcome {
    ContactOutcome {
        resolved,
        handed_off: false,
        abandoned: false,
        first_response_ms,
        handle_seconds: None,
    }
}

fn csat(score: u8) -> Scores {
    Scores {
        csat: Some(score),
        ..Scores::default()
    }
}

#[test]
fn nearest_rank_quantiles() {
    let cases: [(&[i64], f64, Option<i64>); 6] = [
        (&[], 0.5, None),
        (&[7], 0.9, Some(7)),
        (&[1, 2], 0.5, Some(1)),
        (&[1, 2, 3, 4], 0.5, Some(2)),
        (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9, Some(9)),
        (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 0.9, Some(10)),
    ];
    for (sorted, q, expected) in cases {
        assert_eq!(nearest_rank(sorted, q), expected, "{sorted:?} at {q}");
    }
}

#[test]
fn contacts_and_first_response_of_a_day() {
    let contacts = [
        contact(true, Some(4000)),
        contact(false, Some(1000)),
        contact(true, None),
        contact(false, Some(-500)),
    ];
    let day = ChannelDay::of(Channel::Social, &contacts, &[]);
    assert_eq!((day.contacts, day.resolved_contacts), (4, 2));
    assert_eq!(day.frt_responses, 3);
    assert!((day.frt_sum_s - 4.5).abs() < 1e-9);
    assert_eq!((day.frt_p50_s, day.frt_p90_s), (Some(1.0), Some(4.0)));
    assert_eq!(day.resolution_pct(), Some(50.0));
    assert_eq!((day.calls, day.conversations), (0, 0));
}

#[test]
fn calls_handle_time_and_abandon_rate() {
    let completed = ContactOutcome {
        handle_seconds: Some(300),
        ..contact(true, Some(20_000))
    };
    let abandoned = ContactOutcome {
        abandoned: true,
        handle_seconds: Some(0),
        ..contact(false, Some(90_000))
    };
    let day = ChannelDay::of(Channel::CallCenter, &[completed, completed, abandoned], &[]);
    assert_eq!((day.calls, day.abandoned_calls), (3, 1));
    assert_eq!((day.handled_calls, day.handle_sum_s), (2, 600.0));
}

#[test]
fn containment_counts_chatbot_handoffs() {
    let handed = ContactOutcome {
        handed_off: true,
        ..contact(false, None)
    };
    let day = ChannelDay::of(Channel::Chatbot, &[handed, contact(true, None)], &[]);
    assert_eq!((day.conversations, day.handed_off), (2, 1));
    let app = ChannelDay::of(Channel::App, &[handed], &[]);
    assert_eq!((app.conversations, app.handed_off), (0, 0));
}

#[test]
fn scores_by_scale() {
    let scores = [
        csat(5),
        csat(4),
        csat(3),
        Scores {
            nps: Some(10),
            ces: Some(6),
            ..Scores::default()
        },
        Scores {
            nps: Some(7),
            sentiment: Some(-0.5),
            ..Scores::default()
        },
        Scores {
            nps: Some(6),
            ces: Some(2),
            sentiment: Some(0.25),
            ..Scores::default()
        },
    ];
    let day = ChannelDay::of(Channel::App, &[], &scores);
    assert_eq!((day.csat_responses, day.csat_top2), (3, 2));
    assert_eq!(
        (day.nps_responses, day.nps_promoters, day.nps_detractors),
        (3, 1, 1)
    );
    assert_eq!((day.ces_responses, day.ces_sum), (2, 8.0));
    assert_eq!((day.sentiment_responses, day.sentiment_sum), (2, -0.25));
    assert!(!day.is_empty());
    assert!(ChannelDay::of(Channel::App, &[], &[]).is_empty());
}

#[test]
fn gaps_need_two_qualifying_channels() {
    let rated = |top2: usize, responses: usize| {
        let scores: Vec<Scores> = (0..responses)
            .map(|i| csat(if i < top2 { 5 } else { 1 }))
            .collect();
        ChannelDay::of(Channel::App, &[], &scores)
    };
    let nine = rated(9, 9);
    let cases = [
        (vec![rated(8, 10), rated(5, 10)], Some(30.0)),
        (vec![rated(8, 10), nine.clone()], None),
        (vec![rated(8, 10)], None),
        (vec![rated(10, 10), rated(0, 20), rated(5, 10)], Some(100.0)),
    ];
    for (channels, expected) in cases {
        let day = ConsistencyDay::of(&[], &channels);
        assert_eq!(day.csat_gap_pp, expected);
        assert_eq!(day.resolution_gap_pp, None, "no contacts");
    }
    let resolving = |resolved: usize| {
        let contacts: Vec<ContactOutcome> = (0..10).map(|i| contact(i < resolved, None)).collect();
        ChannelDay::of(Channel::Social, &contacts, &[])
    };
    let day = ConsistencyDay::of(&[], &[resolving(9), resolving(6)]);
    assert_eq!(day.resolution_gap_pp, Some(30.0));
}

#[test]
fn journeys_of_a_day() {
    let journey =
        |contacts, channel_count, channel_switches, one_contact_resolution| JourneyOutcome {
            contacts,
            channel_count,
            channel_switches,
            one_contact_resolution,
        };
    let journeys = [
        journey(1, 1, 0, true),
        journey(1, 1, 0, false),
        journey(3, 2, 2, false),
        journey(2, 1, 0, false),
    ];
    let day = ConsistencyDay::of(&journeys, &[]);
    assert_eq!(
        (
            day.journeys,
            day.multichannel_journeys,
            day.ocr_journeys,
            day.repeat_journeys,
            day.channel_switches
        ),
        (4, 1, 1, 2, 2)
    );
}

#[test]
fn customer_csat_range_over_rated_channels() {
    let stats = CustomerStats::of(
        [Channel::App, Channel::Chatbot, Channel::App],
        3,
        2,
        [
            (Channel::Chatbot, 5),
            (Channel::Chatbot, 4),
            (Channel::CallCenter, 2),
        ],
    );
    assert_eq!(stats.channels, [Channel::Chatbot, Channel::App]);
    assert_eq!(stats.csat_range, Some(2.5));
    let one = CustomerStats::of([Channel::App], 1, 1, [(Channel::App, 5)]);
    assert_eq!(one.csat_range, None);
}
