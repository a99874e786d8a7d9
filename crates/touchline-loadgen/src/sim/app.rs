//! App sessions as the SDK reports them (`app.v1`; key device_id): browsing,
//! logins with traits, purchases, crashes, and self-service support.
//!
//! Device clocks drift: an event's `client_ts` is the device clock, its
//! `server_ts` the collector's; the truth keeps the device time when the two
//! are within 10 minutes, else the collector's (`SPEC.md` §2). Offline
//! devices send their events in a batch later, which puts the collector's
//! clock far ahead of the device's too.

use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde_json::{json, Map, Value};
use touchline_model::{Channel, Topic};

use super::{rating, topic_label, EventFacts, Outcome, RawScores, Sim};
use crate::people::{EmailStyle, Person, PhoneStyle};
use crate::scenario::{HOUR_MS, MINUTE_MS};
use crate::truth::{ContactFacts, IdentifierUse, MAX_CLIENT_DRIFT_MS};

/// What the customer does in the app.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Session {
    /// Looks for help on a topic and may file a support request (a contact).
    Support(Topic),
    /// Browses, buys, crashes: no contact.
    Browse,
}

/// How a scripted session must go; `None` leaves it to chance.
#[derive(Debug, Clone)]
pub(crate) struct AppOpts {
    pub(crate) session: Session,
    /// Index into the person's devices.
    pub(crate) device: Option<usize>,
    /// Whether the customer is logged in (`user_id` set).
    pub(crate) login: Option<bool>,
    /// Forces a login event whose traits carry the email in this style.
    pub(crate) login_email: Option<EmailStyle>,
    /// Forces a login event whose traits carry the phone in this format.
    pub(crate) login_phone: Option<PhoneStyle>,
    /// Forces a login event whose traits carry the person's invalid email.
    pub(crate) login_bad_email: bool,
    /// Device clock minus true time for this session, instead of the device's
    /// usual skew.
    pub(crate) clock_skew_ms: Option<i64>,
}

impl AppOpts {
    pub(crate) fn new(session: Session) -> Self {
        AppOpts {
            session,
            device: None,
            login: None,
            login_email: None,
            login_phone: None,
            login_bad_email: false,
            clock_skew_ms: None,
        }
    }
}

/// One SDK event before it is timed.
struct Step {
    name: &'static str,
    screen: Option<&'static str>,
    traits: Vec<(&'static str, String)>,
    properties: Vec<(&'static str, String)>,
    topic: Topic,
    scores: RawScores,
    /// Identifiers in the traits.
    identifiers: Vec<IdentifierUse>,
    contact: bool,
    /// `properties.resolved` of a support request.
    resolves: Option<bool>,
}

impl Step {
    fn new(name: &'static str, screen: Option<&'static str>) -> Self {
        Step {
            name,
            screen,
            traits: Vec::new(),
            properties: Vec::new(),
            topic: Topic::Other,
            scores: RawScores::default(),
            identifiers: Vec::new(),
            contact: false,
            resolves: None,
        }
    }
}

const OFF_TOPIC: [&str; 3] = ["other", "general", "faq"];
const SCREENS: [&str; 5] = ["home", "category", "product_detail", "cart", "orders"];

impl Sim<'_> {
    /// One session of `person` starting at `t0`; `None` without a device.
    pub(crate) fn app_session(
        &mut self,
        person: &Person,
        t0: i64,
        opts: &AppOpts,
    ) -> Option<Outcome> {
        let device = match opts.device {
            Some(i) => person.devices.get(i),
            None => self.dice.choose(&person.devices),
        }?
        .clone();
        let d = &mut self.dice;
        let skew = opts.clock_skew_ms.unwrap_or(device.clock_skew_ms);
        let offline_ms = if opts.clock_skew_ms.is_none() && d.chance(0.03) {
            d.int(20 * MINUTE_MS, 3 * HOUR_MS)
        } else {
            0
        };
        let forced_login =
            opts.login_email.is_some() || opts.login_phone.is_some() || opts.login_bad_email;
        let logged_in = person.account.is_some()
            && (forced_login || opts.login.unwrap_or_else(|| d.chance(0.7)));
        let user = if logged_in {
            person.account_used(d)
        } else {
            None
        };

        let mut steps = Vec::new();
        if logged_in && (forced_login || d.chance(0.35)) {
            steps.push(self.login_step(person, opts));
        }
        let d = &mut self.dice;
        let mut resolved = false;
        match opts.session {
            Session::Browse => {
                steps.push(Step::new("screen_view", Some("home")));
                for _ in 0..d.int(1, 3) {
                    steps.push(Step::new("screen_view", Some(d.pick(&SCREENS))));
                }
                if d.chance(0.25) {
                    let mut purchase = Step::new("purchase", Some("checkout"));
                    purchase.properties = vec![
                        ("order_id", format!("ORD-{}", d.digits(8))),
                        ("revenue", format!("{}", d.int(5, 400) * 1_000)),
                        ("currency", "KRW".to_owned()),
                    ];
                    steps.push(purchase);
                }
                if d.chance(0.05) {
                    let mut crash = Step::new("app_crash", None);
                    crash.properties = vec![(
                        "error",
                        d.pick(&["NullPointerException", "OutOfMemoryError", "SIGABRT"])
                            .to_owned(),
                    )];
                    steps.push(crash);
                }
                if d.chance(0.04) {
                    let good = d.chance(0.6);
                    steps.push(feedback(d, None, good));
                }
                if d.chance(0.04) {
                    steps.push(nps(d));
                }
            }
            Session::Support(topic) => {
                steps.push(Step::new("screen_view", Some("help_center")));
                for _ in 0..d.int(1, 2) {
                    let mut article = Step::new("support_article_view", Some("help_article"));
                    article.properties = vec![
                        ("topic", topic_label(d, topic, &OFF_TOPIC)),
                        ("article_id", format!("KB-{}", d.int(100, 999))),
                    ];
                    article.topic = topic;
                    steps.push(article);
                }
                if d.chance(0.7) {
                    resolved = d.chance(0.45);
                    let mut request = Step::new("support_request", Some("contact_us"));
                    request.properties = vec![
                        ("topic", topic_label(d, topic, &OFF_TOPIC)),
                        ("resolved", resolved.to_string()),
                    ];
                    request.topic = topic;
                    request.contact = true;
                    request.resolves = Some(resolved);
                    steps.push(request);
                }
                if d.chance(0.25) {
                    steps.push(feedback(d, Some(topic), resolved));
                }
                if d.chance(0.1) {
                    steps.push(nps(d));
                }
            }
        }

        let mut t = t0;
        let mut end_ms = t0;
        for step in steps {
            let d = &mut self.dice;
            t += d.int(5_000, 120_000);
            let client_ms = t + skew;
            let server_ms = t + d.int(80, 2_500) + offline_ms;
            let server_us = server_ms * 1000 + d.int(0, 999);
            let offset = client_ms - server_ms;
            let occurred = if offset.abs() <= MAX_CLIENT_DRIFT_MS {
                client_ms
            } else {
                server_ms
            };
            let event_id = self.ids.draw(&mut self.dice, |d| d.uuid());
            let mut identifiers = vec![Person::device_used(&device)];
            if let Some((_, used)) = &user {
                identifiers.push(used.clone());
            }
            identifiers.extend(step.identifiers);
            let map = |pairs: Vec<(&str, String)>| {
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), Value::String(v)))
                    .collect::<Map<String, Value>>()
            };
            let document = json!({
                "event_id": event_id,
                "event_name": step.name,
                "client_ts": iso(client_ms, device.utc_offset_s),
                "server_ts": server_us,
                "device_id": device.id,
                "user_id": user.as_ref().map(|(raw, _)| raw),
                "platform": device.platform.symbol(),
                "app_version": device.app_version,
                "screen": step.screen,
                "traits": map(step.traits),
                "properties": map(step.properties),
            });
            let facts = EventFacts {
                contact_id: step.contact.then(|| format!("app:{event_id}")),
                event_id,
                channel: Channel::App,
                occurred_at_ms: occurred,
                topic: step.topic,
                kind: step.name.to_owned(),
                schema: "app.v1",
                scores: step.scores,
                client_offset_ms: Some(offset),
                identifiers,
                contact: ContactFacts {
                    resolves: step.resolves,
                    ..ContactFacts::default()
                },
            };
            // The customer is done when the last event happens, whenever
            // the collector hears of it.
            end_ms = end_ms.max(t);
            let published = server_ms + self.dice.int(1, 500);
            self.emit(person, &device.id, document, facts, published);
        }
        Some(Outcome { end_ms, resolved })
    }

    /// A `login` event whose traits carry the person's email, phone and name.
    fn login_step(&mut self, person: &Person, opts: &AppOpts) -> Step {
        let d = &mut self.dice;
        let mut step = Step::new("login", Some("login"));
        let email = match opts.login_email {
            Some(style) => person.email_styled(style),
            None if opts.login_bad_email => person.bad_email_used(),
            None if person.bad_email.is_some() && d.chance(0.5) => person.bad_email_used(),
            None if d.chance(0.8) => person.email_used(d),
            None => None,
        };
        if let Some((raw, used)) = email {
            step.traits.push(("email", raw));
            step.identifiers.push(used);
        }
        let phone = match (opts.login_phone, person.phone) {
            (Some(style), Some(phone)) => Some(phone.used(style)),
            (None, Some(phone)) if d.chance(0.02) => {
                let used = phone.typo();
                Some((used.raw.clone(), used))
            }
            (None, Some(phone)) if d.chance(0.5) => {
                Some(phone.used(d.pick(&[PhoneStyle::Plain, PhoneStyle::Dashed])))
            }
            _ => None,
        };
        if let Some((raw, used)) = phone {
            step.traits.push(("phone", raw));
            step.identifiers.push(used);
        }
        step.traits.push(("name", person.name()));
        step
    }
}

fn feedback(d: &mut crate::dice::Dice, topic: Option<Topic>, good: bool) -> Step {
    let mut step = Step::new("feedback_submitted", Some("feedback"));
    let stars = rating(d, 1, 5, good, &[0, 6]);
    step.properties = vec![("rating", stars.to_string())];
    if let Some(topic) = topic {
        step.properties
            .push(("topic", topic_label(d, topic, &OFF_TOPIC)));
        step.topic = topic;
    }
    step.scores.csat = Some(stars);
    step
}

fn nps(d: &mut crate::dice::Dice) -> Step {
    let mut step = Step::new("nps_answered", Some("nps_survey"));
    let good = d.chance(0.6);
    let answer = rating(d, 0, 10, good, &[11]);
    step.properties = vec![("nps", answer.to_string())];
    step.scores.nps = Some(answer);
    step
}

/// ISO-8601 with milliseconds, in the device's UTC offset (`Z` for UTC).
fn iso(ms: i64, utc_offset_s: i32) -> String {
    let Some(utc) = DateTime::from_timestamp_millis(ms) else {
        return ms.to_string();
    };
    match FixedOffset::east_opt(utc_offset_s) {
        Some(offset) if utc_offset_s != 0 => utc
            .with_timezone(&offset)
            .to_rfc3339_opts(SecondsFormat::Millis, false),
        _ => utc.to_rfc3339_opts(SecondsFormat::Millis, true),
    }
}

#[cfg(test)]
mod tests {
    use super::iso;

    #[test]
    fn client_timestamps_carry_the_device_offset() {
        let ms = 1_772_324_102_120;
        assert_eq!(iso(ms, 9 * 3600), "2026-03-01T09:15:02.120+09:00");
        assert_eq!(iso(ms, 0), "2026-03-01T00:15:02.120Z");
        assert_eq!(iso(ms, -7 * 3600), "2026-02-28T17:15:02.120-07:00");
    }
}
