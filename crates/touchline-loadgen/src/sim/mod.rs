//! The simulation: customers living through cross-channel journeys
//! (`SPEC.md` §4-5), written as the four source systems record them.
//!
//! Each channel's builder ([`chatbot`], [`call`], [`social`], [`app`]) writes
//! the documents of one contact and, next to each, the truth of the event:
//! its id, time, topic, contact and scores as the generator meant them. A
//! journey is a plan of contacts on one topic, placed in the simulated window
//! so that every event time stays inside it.

mod app;
mod call;
mod chatbot;
mod social;

use serde_json::Value;
use touchline_model::{Channel, Topic};

use crate::dice::Dice;
use crate::people::{population, EmailStyle, Person, PhoneStyle, Population, UniqueIds};
use crate::scenario::{Scenario, DAY_MS, HOUR_MS, MINUTE_MS};
use crate::truth::{ContactFacts, Household, IdentifierUse, ScoreName, TruthEvent};

pub(crate) use app::{AppOpts, Session};
pub(crate) use call::CallOpts;
pub(crate) use chatbot::ChatOpts;
pub(crate) use social::SocialOpts;

/// One simulated source event: the record to publish and its truth.
#[derive(Debug, Clone)]
pub(crate) struct SimEvent {
    pub(crate) channel: Channel,
    pub(crate) key: String,
    pub(crate) schema: &'static str,
    pub(crate) document: Value,
    pub(crate) truth: TruthEvent,
    /// When the source system published it, before transport delays.
    pub(crate) published_ms: i64,
}

/// What a contact came to, for the journey to decide what happens next.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    pub(crate) end_ms: i64,
    pub(crate) resolved: bool,
}

/// The scores an event carries, before the scale check.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawScores {
    pub(crate) csat: Option<i32>,
    pub(crate) ces: Option<i32>,
    pub(crate) nps: Option<i32>,
    pub(crate) sentiment: Option<f32>,
}

/// The fields of a [`TruthEvent`] that a channel builder knows.
pub(crate) struct EventFacts {
    pub(crate) event_id: String,
    pub(crate) channel: Channel,
    pub(crate) occurred_at_ms: i64,
    pub(crate) topic: Topic,
    pub(crate) contact_id: Option<String>,
    pub(crate) kind: String,
    pub(crate) schema: &'static str,
    pub(crate) scores: RawScores,
    pub(crate) client_offset_ms: Option<i64>,
    pub(crate) identifiers: Vec<IdentifierUse>,
    pub(crate) contact: ContactFacts,
}

impl EventFacts {
    /// The truth of the event for `customer`: scores outside their scale
    /// (CSAT 1..5, CES 1..7, NPS 0..10, sentiment -1..1) are dropped.
    fn into_truth(self, customer: &str) -> TruthEvent {
        let mut dropped = Vec::new();
        let mut scaled = |value: Option<i32>, min: i32, max: i32, name: ScoreName| {
            let value = value?;
            if (min..=max).contains(&value) {
                u8::try_from(value).ok()
            } else {
                dropped.push(name);
                None
            }
        };
        let csat = scaled(self.scores.csat, 1, 5, ScoreName::Csat);
        let ces = scaled(self.scores.ces, 1, 7, ScoreName::Ces);
        let nps = scaled(self.scores.nps, 0, 10, ScoreName::Nps);
        let sentiment = match self.scores.sentiment {
            Some(s) if (-1.0..=1.0).contains(&s) => Some(s),
            Some(_) => {
                dropped.push(ScoreName::Sentiment);
                None
            }
            None => None,
        };
        TruthEvent {
            event_id: self.event_id,
            channel: self.channel,
            occurred_at_ms: self.occurred_at_ms,
            topic: self.topic,
            contact_id: self.contact_id,
            kind: self.kind,
            schema: self.schema.to_owned(),
            csat,
            ces,
            nps,
            sentiment,
            dropped_scores: dropped,
            client_offset_ms: self.client_offset_ms,
            customer: customer.to_owned(),
            identifiers: self.identifiers,
            role: self.contact.role,
            resolves: self.contact.resolves,
            wait_seconds: self.contact.wait_seconds,
            handle_seconds: self.contact.handle_seconds,
            deliveries: 0,
        }
    }
}

/// A label naming a topic as a source system writes it, and the topic it
/// means (`SPEC.md` §2: case and surrounding space do not matter; anything
/// outside the list is `other`).
pub(crate) fn topic_label(dice: &mut Dice, topic: Topic, others: &[&'static str]) -> String {
    if topic == Topic::Other {
        return dice.pick(others).to_owned();
    }
    let name = topic.as_str();
    match dice.weighted(&[(0, 95), (1, 3), (2, 2)]) {
        0 => name.to_owned(),
        1 => {
            let mut chars = name.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        }
        _ => format!(" {name} "),
    }
}

/// A sentiment score in steps of 0.05, leaning negative for complaints.
pub(crate) fn sentiment(dice: &mut Dice, mood: i64) -> f32 {
    let steps = (dice.int(-20, 20) + mood).clamp(-20, 20);
    steps as f32 / 20.0
}

/// A score as a customer gives it, now and then outside its scale (a client
/// bug or a survey tool with a different scale); `good` leans it high.
pub(crate) fn rating(dice: &mut Dice, min: i32, max: i32, good: bool, out_of_scale: &[i32]) -> i32 {
    if dice.chance(0.03) {
        return dice.pick(out_of_scale);
    }
    let mid = (min + max) / 2;
    if good {
        dice.int(i64::from(mid), i64::from(max)) as i32
    } else {
        dice.int(i64::from(min), i64::from(mid)) as i32
    }
}

/// The whole simulation's state.
pub(crate) struct Sim<'a> {
    pub(crate) dice: Dice,
    pub(crate) scenario: &'a Scenario,
    pub(crate) ids: UniqueIds,
    pub(crate) events: Vec<SimEvent>,
    /// Earliest and latest time any event may have.
    first_ms: i64,
    last_ms: i64,
    /// Contacts start no later than this (`start + days`).
    last_start_ms: i64,
    /// From here on most chatbot conversations use `chatbot.v2`.
    pub(crate) chatbot_cutover_ms: i64,
    /// From here on most call records use `callcenter.v2`.
    pub(crate) call_cutover_ms: i64,
}

/// A contact in a journey plan.
#[derive(Debug, Clone)]
enum Step {
    Chat(ChatOpts),
    Call(CallOpts),
    Social(SocialOpts),
    App(AppOpts),
}

impl Step {
    /// Longest time from the contact's start to its last event.
    fn span_ms(&self) -> i64 {
        match self {
            Step::Chat(_) => 2 * HOUR_MS,
            Step::Call(opts) if opts.survey == Some(false) => 2 * HOUR_MS,
            Step::Call(_) => 33 * HOUR_MS,
            Step::Social(_) => 2 * DAY_MS,
            Step::App(_) => 4 * HOUR_MS,
        }
    }
}

/// A contact at an offset from the journey's start, for one person.
#[derive(Debug, Clone)]
struct Planned {
    at_ms: i64,
    person: usize,
    step: Step,
    /// Skipped when the previous contact was resolved (most of the time).
    only_if_unresolved: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Template {
    ChatCallSocial,
    AppChatCall,
    CallOnly,
    ChatOnly,
    SocialOnly,
    ReviewOnly,
    AppOnly,
    CallCall,
    GapOverAWeek,
}

const TOPICS: [(Topic, u32); 6] = [
    (Topic::Billing, 24),
    (Topic::Delivery, 24),
    (Topic::Account, 15),
    (Topic::Product, 15),
    (Topic::Technical, 14),
    (Topic::Other, 8),
];

impl<'a> Sim<'a> {
    pub(crate) fn new(scenario: &'a Scenario) -> Self {
        let days_ms = i64::from(scenario.days) * DAY_MS;
        let first_ms = scenario.start_ms + HOUR_MS;
        let last_ms = scenario.end_ms() - HOUR_MS;
        Sim {
            dice: Dice::new(scenario.seed),
            scenario,
            ids: UniqueIds::default(),
            events: Vec::new(),
            first_ms,
            last_ms,
            last_start_ms: (scenario.start_ms + days_ms).min(last_ms),
            chatbot_cutover_ms: scenario.start_ms + days_ms * 2 / 5,
            call_cutover_ms: scenario.start_ms + days_ms * 3 / 5,
        }
    }

    /// Simulates the population; returns its households for the truth.
    pub(crate) fn run(&mut self) -> Vec<Household> {
        let population = population(&mut self.dice, self.scenario.customers, &mut self.ids);
        for index in 0..population.people.len() {
            let journeys = self.dice.weighted(&[(1, 45), (2, 30), (3, 17), (4, 8)]);
            for _ in 0..journeys {
                let plan = self.plan_journey(&population.people[index], index);
                self.place_and_run(&population, plan);
            }
            self.background_usage(&population.people[index]);
        }
        self.hard_cases(&population);
        population
            .households
            .iter()
            .enumerate()
            .map(|(number, [a, b])| {
                let (a, b) = (&population.people[*a], &population.people[*b]);
                let mut shared = Vec::new();
                if let Some(device) = a.devices.iter().find(|d| d.shared) {
                    shared.push(Person::device_used(device).normal.unwrap_or_default());
                }
                if let Some(phone) = a.phone {
                    shared.push(phone.normal());
                }
                Household {
                    id: format!("household-{}", number + 1),
                    members: vec![a.id.clone(), b.id.clone()],
                    shared,
                }
            })
            .collect()
    }

    /// Adds one event.
    pub(crate) fn emit(
        &mut self,
        person: &Person,
        key: &str,
        document: Value,
        facts: EventFacts,
        published_ms: i64,
    ) {
        self.events.push(SimEvent {
            channel: facts.channel,
            key: key.to_owned(),
            schema: facts.schema,
            document,
            truth: facts.into_truth(&person.id),
            published_ms,
        });
    }

    /// A random journey of one person: a topic and a few contacts.
    fn plan_journey(&mut self, person: &Person, index: usize) -> Vec<Planned> {
        let topic = self.dice.weighted(&TOPICS);
        let has_social = !person.handles.is_empty();
        let has_app = !person.devices.is_empty();
        let weight = |ok: bool, w: u32| if ok { w } else { 0 };
        let template = self.dice.weighted(&[
            (Template::ChatCallSocial, 22),
            (Template::AppChatCall, weight(has_app, 14)),
            (Template::CallOnly, 14),
            (Template::ChatOnly, 14),
            (Template::SocialOnly, weight(has_social, 12)),
            (Template::ReviewOnly, weight(has_social, 6)),
            (Template::AppOnly, weight(has_app, 9)),
            (Template::CallCall, 6),
            (Template::GapOverAWeek, 8),
        ]);
        let chat = || Step::Chat(ChatOpts::new(topic));
        let call = || Step::Call(CallOpts::new(topic));
        let social = |review| Step::Social(SocialOpts::new(topic, review));
        let app = || Step::App(AppOpts::new(Session::Support(topic)));
        let at = |at_ms, step, only_if_unresolved| Planned {
            at_ms,
            person: index,
            step,
            only_if_unresolved,
        };
        let d = &mut self.dice;
        match template {
            Template::ChatCallSocial => {
                let call_at = d.int(12 * HOUR_MS, 36 * HOUR_MS);
                let mut plan = vec![at(0, chat(), false), at(call_at, call(), true)];
                if has_social && d.chance(0.6) {
                    let social_at = call_at + d.int(DAY_MS, 2 * DAY_MS);
                    plan.push(at(social_at, social(false), true));
                }
                plan
            }
            Template::AppChatCall => {
                let chat_at = d.int(5 * MINUTE_MS, 2 * HOUR_MS);
                let call_at = chat_at + d.int(HOUR_MS, 30 * HOUR_MS);
                vec![
                    at(0, app(), false),
                    at(chat_at, chat(), true),
                    at(call_at, call(), true),
                ]
            }
            Template::CallOnly => vec![at(0, call(), false)],
            Template::ChatOnly => vec![at(0, chat(), false)],
            Template::SocialOnly => vec![at(0, social(false), false)],
            Template::ReviewOnly => vec![at(0, social(true), false)],
            Template::AppOnly => vec![at(0, app(), false)],
            Template::CallCall => {
                let again = d.int(2 * DAY_MS, 5 * DAY_MS);
                vec![at(0, call(), false), at(again, call(), false)]
            }
            Template::GapOverAWeek => {
                // Contacts on one topic more than 7 days apart: two journeys.
                let later = d.int(7 * DAY_MS + 12 * HOUR_MS, 9 * DAY_MS + 12 * HOUR_MS);
                let second = if d.chance(0.5) { call() } else { chat() };
                vec![at(0, chat(), false), at(later, second, false)]
            }
        }
    }

    /// Places a plan in the window (dropping trailing contacts that do not
    /// fit) and simulates it.
    fn place_and_run(&mut self, population: &Population, mut plan: Vec<Planned>) {
        let span = |plan: &[Planned]| {
            plan.iter()
                .map(|p| p.at_ms + p.step.span_ms())
                .max()
                .unwrap_or(0)
        };
        while plan.len() > 1 && self.first_ms + span(&plan) > self.last_ms {
            plan.pop();
        }
        let room = self.last_ms - span(&plan);
        if plan.is_empty() || room < self.first_ms {
            return;
        }
        let start = self.dice.int(self.first_ms, room.min(self.last_start_ms));
        let mut previous: Option<Outcome> = None;
        for planned in plan {
            if planned.only_if_unresolved
                && previous.is_some_and(|o| o.resolved)
                && self.dice.chance(0.8)
            {
                continue;
            }
            let person = &population.people[planned.person];
            // A contact starts after the previous one has ended.
            let t0 = previous.map_or(start + planned.at_ms, |o| {
                (start + planned.at_ms).max(o.end_ms + MINUTE_MS)
            });
            let outcome = match &planned.step {
                Step::Chat(opts) => Some(self.chat(person, t0, opts)),
                Step::Call(opts) => Some(self.call(person, t0, opts)),
                Step::Social(opts) => self.social(person, t0, opts),
                Step::App(opts) => self.app_session(person, t0, opts),
            };
            if outcome.is_some() {
                previous = outcome;
            }
        }
    }

    /// App use that is not a contact: browsing, logging in, buying, crashing.
    fn background_usage(&mut self, person: &Person) {
        for device in 0..person.devices.len() {
            for _ in 0..self.dice.int(0, 3) {
                let latest = self.last_start_ms.min(self.last_ms - 4 * HOUR_MS);
                let t0 = self.dice.int(self.first_ms, latest);
                let opts = AppOpts {
                    device: Some(device),
                    ..AppOpts::new(Session::Browse)
                };
                self.app_session(person, t0, &opts);
            }
        }
    }

    /// The scripted hard cases of `SPEC.md` §2-3, one journey each.
    fn hard_cases(&mut self, population: &Population) {
        let Some(hard) = population.hard else {
            return;
        };
        let plan = |person: usize, steps: Vec<(i64, Step)>| -> Vec<Planned> {
            steps
                .into_iter()
                .map(|(at_ms, step)| Planned {
                    at_ms,
                    person,
                    step,
                    only_if_unresolved: false,
                })
                .collect()
        };
        // One email in three letter cases: chatbot login, app login traits,
        // and an agent-verified social direct message.
        let topic = Topic::Billing;
        let email = plan(
            hard.email_cases,
            vec![
                (
                    0,
                    Step::Chat(ChatOpts {
                        login: Some(true),
                        email: Some(EmailStyle::Title),
                        ..ChatOpts::new(topic)
                    }),
                ),
                (
                    2 * HOUR_MS,
                    Step::App(AppOpts {
                        device: Some(0),
                        login_email: Some(EmailStyle::Lower),
                        ..AppOpts::new(Session::Support(topic))
                    }),
                ),
                (
                    6 * HOUR_MS,
                    Step::Social(SocialOpts {
                        direct: Some(true),
                        verify_email: Some(EmailStyle::Upper),
                        ..SocialOpts::new(topic, false)
                    }),
                ),
            ],
        );
        self.place_and_run(population, email);

        // One phone number in five formats: three calls (v1 `ani` and v2
        // `caller_number`), the chatbot's user phone, the app's traits.
        let topic = Topic::Delivery;
        let call = |schema: &'static str, style| {
            Step::Call(CallOpts {
                schema: Some(schema),
                phone: Some(style),
                survey: Some(false),
                ..CallOpts::new(topic)
            })
        };
        let phone = plan(
            hard.phone_formats,
            vec![
                (0, call("callcenter.v1", PhoneStyle::Dashed)),
                (
                    3 * HOUR_MS,
                    Step::Chat(ChatOpts {
                        login: Some(true),
                        phone: Some(PhoneStyle::IntlDashed),
                        ..ChatOpts::new(topic)
                    }),
                ),
                (6 * HOUR_MS, call("callcenter.v2", PhoneStyle::IntlSpaced)),
                (
                    9 * HOUR_MS,
                    Step::App(AppOpts {
                        device: Some(0),
                        login_phone: Some(PhoneStyle::Plain),
                        ..AppOpts::new(Session::Support(topic))
                    }),
                ),
                (
                    12 * HOUR_MS,
                    call("callcenter.v1", PhoneStyle::CarrierDigits),
                ),
            ],
        );
        self.place_and_run(population, phone);

        // Device clocks: one session 47 minutes ahead (server time wins), one
        // 4.5 minutes behind (the device's time is kept), where the customer
        // signs in with an invalid email.
        let drift = plan(
            hard.clock_drift,
            vec![
                (
                    0,
                    Step::App(AppOpts {
                        clock_skew_ms: Some(47 * MINUTE_MS),
                        ..AppOpts::new(Session::Support(Topic::Technical))
                    }),
                ),
                (
                    3 * HOUR_MS,
                    Step::App(AppOpts {
                        clock_skew_ms: Some(-(4 * MINUTE_MS + 30_000)),
                        login_bad_email: true,
                        ..AppOpts::new(Session::Browse)
                    }),
                ),
                // Survey answers outside their scales (kept events, dropped
                // scores), on a call with a withheld number.
                (
                    5 * HOUR_MS,
                    Step::Chat(ChatOpts {
                        survey_csat: Some(0),
                        ..ChatOpts::new(Topic::Technical)
                    }),
                ),
                (
                    8 * HOUR_MS,
                    Step::Call(CallOpts {
                        abandon: Some(false),
                        withheld: true,
                        verify: Some(true),
                        survey_scores: Some((Some(6), Some(8), Some(11))),
                        ..CallOpts::new(Topic::Technical)
                    }),
                ),
            ],
        );
        self.place_and_run(population, drift);

        // Households: both account holders log in on the shared device and
        // call, verified, from the shared phone.
        for [a, b] in population.households.clone() {
            let shared_device = population.people[a].devices.iter().position(|d| d.shared);
            let on_shared = |session| {
                Step::App(AppOpts {
                    device: shared_device,
                    login: Some(true),
                    ..AppOpts::new(session)
                })
            };
            let verified_call = |topic| {
                Step::Call(CallOpts {
                    verify: Some(true),
                    survey: Some(false),
                    abandon: Some(false),
                    ..CallOpts::new(topic)
                })
            };
            let shared_device_b = population.people[b].devices.iter().position(|d| d.shared);
            let mut household = plan(
                a,
                vec![
                    (0, on_shared(Session::Support(Topic::Account))),
                    (HOUR_MS, verified_call(Topic::Account)),
                ],
            );
            household.extend(plan(
                b,
                vec![
                    (
                        4 * HOUR_MS,
                        Step::App(AppOpts {
                            device: shared_device_b,
                            login: Some(true),
                            ..AppOpts::new(Session::Browse)
                        }),
                    ),
                    (5 * HOUR_MS, verified_call(Topic::Billing)),
                ],
            ));
            self.place_and_run(population, household);
        }
    }
}
