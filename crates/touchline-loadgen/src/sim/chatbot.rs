//! Chatbot conversations (`chatbot.v1`, `chatbot.v2`; key conversation_id).

use serde_json::{json, Map, Value};
use touchline_model::{Channel, Topic};

use super::{rating, sentiment, EventFacts, Outcome, RawScores, Sim};
use crate::people::{EmailStyle, Person, PhoneStyle};
use crate::truth::{ContactFacts, IdentifierUse, Role};

/// How a scripted conversation must go; `None` leaves it to chance.
#[derive(Debug, Clone)]
pub(crate) struct ChatOpts {
    pub(crate) topic: Topic,
    /// Whether the visitor logs in during the chat.
    pub(crate) login: Option<bool>,
    /// Forces the user's email into the chat, in this style.
    pub(crate) email: Option<EmailStyle>,
    /// Forces the user's phone into the chat, in this style.
    pub(crate) phone: Option<PhoneStyle>,
    /// Forces an ended conversation with a survey answered with this CSAT.
    pub(crate) survey_csat: Option<i32>,
}

impl ChatOpts {
    pub(crate) fn new(topic: Topic) -> Self {
        ChatOpts {
            topic,
            login: None,
            email: None,
            phone: None,
            survey_csat: None,
        }
    }
}

const SUBINTENTS: [(Topic, [&str; 4]); 5] = [
    (
        Topic::Billing,
        ["refund", "invoice", "double_charge", "payment_failed"],
    ),
    (
        Topic::Delivery,
        ["late", "missing", "address_change", "damaged"],
    ),
    (
        Topic::Account,
        ["login", "password_reset", "close", "update_email"],
    ),
    (
        Topic::Product,
        ["question", "availability", "size_guide", "warranty"],
    ),
    (
        Topic::Technical,
        ["crash", "app_slow", "error_code", "cannot_pay"],
    ),
];
/// Intents whose first part is no topic: `other`.
const OFF_TOPIC: [&str; 5] = [
    "greeting.hello",
    "smalltalk.thanks",
    "chitchat.weather",
    "unknown",
    "feedback.general",
];

/// A detected intent and the topic it names.
#[derive(Debug, Clone)]
struct Intent {
    label: String,
    topic: Topic,
    confidence: f32,
}

/// The fields that vary between the events of one conversation.
struct Turn<'a> {
    event_type: &'static str,
    at_ms: i64,
    intent: Option<&'a Intent>,
    text: Option<&'static str>,
    resolved: Option<bool>,
    csat: Option<i32>,
    sentiment: Option<f32>,
}

impl Turn<'_> {
    fn new(event_type: &'static str, at_ms: i64) -> Self {
        Turn {
            event_type,
            at_ms,
            intent: None,
            text: None,
            resolved: None,
            csat: None,
            sentiment: None,
        }
    }
}

impl Sim<'_> {
    fn intent(&mut self, topic: Topic) -> Intent {
        let confidence = self.dice.int(55, 99) as f32 / 100.0;
        let Some((_, subs)) = SUBINTENTS.iter().find(|(t, _)| *t == topic) else {
            return Intent {
                label: self.dice.pick(&OFF_TOPIC).to_owned(),
                topic: Topic::Other,
                confidence,
            };
        };
        let sub = self.dice.pick(subs);
        let prefix = if self.dice.chance(0.03) {
            // Some NLU models capitalise the domain; still the same topic.
            let name = topic.as_str();
            name[..1].to_ascii_uppercase() + &name[1..]
        } else {
            topic.as_str().to_owned()
        };
        Intent {
            label: format!("{prefix}.{sub}"),
            topic,
            confidence,
        }
    }

    /// One conversation of `person` starting at `t0`.
    pub(crate) fn chat(&mut self, person: &Person, t0: i64, opts: &ChatOpts) -> Outcome {
        let d = &mut self.dice;
        let v2 = if t0 >= self.chatbot_cutover_ms {
            d.chance(0.85)
        } else {
            d.chance(0.1)
        };
        let schema = if v2 { "chatbot.v2" } else { "chatbot.v1" };
        let surface = if v2 {
            d.weighted(&[
                ("WEB", 35),
                ("IOS", 20),
                ("ANDROID", 20),
                ("KAKAO", 15),
                ("LINE", 10),
            ])
        } else {
            d.weighted(&[("WEB", 40), ("IOS", 20), ("ANDROID", 20), ("KAKAO", 20)])
        };
        let language =
            (v2 && d.chance(0.9)).then(|| d.weighted(&[("ko", 80), ("en", 15), ("ja", 5)]));
        let bot_version = d.pick(&["3.1.0", "3.2.0", "3.2.1"]);
        let visitor = d.choose(&person.visitors).cloned().unwrap_or_default();
        let conversation = self
            .ids
            .draw(&mut self.dice, |d| format!("conv-{}", d.hex(12)));
        let login =
            person.account.is_some() && opts.login.unwrap_or_else(|| self.dice.chance(0.55));
        let user = login.then(|| self.chat_user(person, opts));

        let main = self.intent(opts.topic);
        let greeting = (opts.topic != Topic::Other && self.dice.chance(0.25))
            .then(|| self.intent(Topic::Other));
        let scored = self.dice.chance(if v2 { 0.9 } else { 0.5 });
        let mood = if self.dice.chance(0.7) { -6 } else { 2 };

        let d = &mut self.dice;
        let mut t = t0;
        let mut turns = vec![Turn::new("CONVERSATION_STARTED", t)];
        t += d.int(3_000, 40_000);
        if let Some(greeting) = &greeting {
            turns.push(Turn {
                intent: Some(greeting),
                text: Some("hello"),
                ..Turn::new("USER_MESSAGE", t)
            });
            t += d.int(800, 3_000);
            turns.push(Turn {
                intent: Some(greeting),
                text: Some("Hi! How can I help you today?"),
                ..Turn::new("BOT_MESSAGE", t)
            });
            t += d.int(5_000, 30_000);
        }
        for _ in 0..d.int(1, 3) {
            let score = scored.then(|| {
                if d.chance(0.005) {
                    d.pick(&[1.5, -1.25])
                } else {
                    sentiment(d, mood)
                }
            });
            turns.push(Turn {
                intent: Some(&main),
                text: Some(user_text(d, main.topic)),
                sentiment: score,
                ..Turn::new("USER_MESSAGE", t)
            });
            t += d.int(800, 4_000);
            turns.push(Turn {
                intent: Some(&main),
                text: Some(d.pick(&BOT_TEXTS)),
                ..Turn::new("BOT_MESSAGE", t)
            });
            t += d.int(10_000, 90_000);
        }
        let handoff = d.chance(if opts.topic == Topic::Other { 0.1 } else { 0.3 });
        if handoff {
            turns.push(Turn {
                intent: Some(&main),
                ..Turn::new("HANDOFF_TO_AGENT", t)
            });
            t += d.int(20_000, 900_000);
            turns.push(Turn {
                intent: Some(&main),
                text: Some("This is Jiwoo from customer care, let me check."),
                ..Turn::new("AGENT_MESSAGE", t)
            });
            for _ in 0..d.int(0, 2) {
                t += d.int(10_000, 120_000);
                turns.push(Turn {
                    intent: Some(&main),
                    text: Some(user_text(d, main.topic)),
                    ..Turn::new("USER_MESSAGE", t)
                });
                t += d.int(10_000, 180_000);
                turns.push(Turn {
                    intent: Some(&main),
                    text: Some("I have updated your case."),
                    ..Turn::new("AGENT_MESSAGE", t)
                });
            }
        }
        let resolved = d.chance(if handoff { 0.65 } else { 0.55 });
        // Some visitors just leave: no CONVERSATION_ENDED, so not resolved.
        let ended = opts.survey_csat.is_some() || d.chance(0.94);
        if ended {
            t += d.int(10_000, 300_000);
            turns.push(Turn {
                intent: Some(&main),
                resolved: Some(resolved),
                ..Turn::new("CONVERSATION_ENDED", t)
            });
            if opts.survey_csat.is_some() || d.chance(0.35) {
                t += d.int(5_000, 120_000);
                let csat = opts
                    .survey_csat
                    .unwrap_or_else(|| rating(d, 1, 5, resolved, &[0, 6]));
                turns.push(Turn {
                    csat: Some(csat),
                    ..Turn::new("SURVEY_RESPONSE", t)
                });
            }
        }

        // The user is known from the first message after the login, which
        // happens right after the visitor's first message.
        let logged_in_from = turns
            .iter()
            .position(|turn| turn.event_type == "USER_MESSAGE")
            .map_or(usize::MAX, |i| i + 1);
        let contact = format!("chatbot:{conversation}");
        let mut events = Vec::with_capacity(turns.len());
        for (i, turn) in turns.iter().enumerate() {
            let event_id = self.ids.draw(&mut self.dice, |d| d.uuid());
            let user = user.as_ref().filter(|_| i >= logged_in_from);
            let mut identifiers = vec![Person::visitor_used(&visitor)];
            if let Some((_, used)) = user {
                identifiers.extend(used.iter().cloned());
            }
            let mut doc = Map::new();
            doc.insert("event_id".into(), json!(event_id));
            doc.insert("conversation_id".into(), json!(conversation));
            doc.insert("occurred_at".into(), json!(turn.at_ms));
            doc.insert("event_type".into(), json!(turn.event_type));
            doc.insert("visitor_id".into(), json!(visitor));
            doc.insert(
                "user".into(),
                user.map_or(Value::Null, |(value, _)| value.clone()),
            );
            doc.insert("surface".into(), json!(surface));
            doc.insert("intent".into(), json!(turn.intent.map(|i| &i.label)));
            doc.insert(
                "intent_confidence".into(),
                json!(turn.intent.map(|i| i.confidence)),
            );
            doc.insert("text".into(), json!(turn.text));
            doc.insert("resolved".into(), json!(turn.resolved));
            doc.insert("csat".into(), json!(turn.csat));
            doc.insert("sentiment".into(), json!(turn.sentiment));
            if v2 {
                doc.insert("language".into(), json!(language));
                doc.insert("bot_version".into(), json!(bot_version));
            }
            let facts = EventFacts {
                event_id,
                channel: Channel::Chatbot,
                occurred_at_ms: turn.at_ms,
                topic: turn.intent.map_or(Topic::Other, |i| i.topic),
                contact_id: Some(contact.clone()),
                kind: turn.event_type.to_owned(),
                schema,
                scores: RawScores {
                    csat: turn.csat,
                    sentiment: turn.sentiment,
                    ..RawScores::default()
                },
                client_offset_ms: None,
                identifiers,
                contact: ContactFacts {
                    role: match turn.event_type {
                        "USER_MESSAGE" => Some(Role::Customer),
                        "BOT_MESSAGE" | "AGENT_MESSAGE" => Some(Role::Responder),
                        _ => None,
                    },
                    resolves: turn.resolved,
                    wait_seconds: None,
                    handle_seconds: None,
                },
            };
            events.push((Value::Object(doc), facts, turn.at_ms));
        }
        for (doc, facts, at_ms) in events {
            let published = at_ms + self.dice.int(50, 1_500);
            self.emit(person, &conversation, doc, facts, published);
        }
        Outcome {
            end_ms: t,
            resolved: ended && resolved,
        }
    }

    /// The `user` record of a logged-in conversation and its identifiers.
    fn chat_user(&mut self, person: &Person, opts: &ChatOpts) -> (Value, Vec<IdentifierUse>) {
        let d = &mut self.dice;
        let mut identifiers = Vec::new();
        let account = person.account_used(d).map(|(raw, used)| {
            identifiers.push(used);
            raw
        });
        let email = match opts.email {
            Some(style) => person.email_styled(style),
            None if d.chance(0.7) => person.email_used(d),
            None => None,
        }
        .map(|(raw, used)| {
            identifiers.push(used);
            raw
        });
        let style = opts.phone.or_else(|| {
            d.chance(0.4).then(|| {
                d.weighted(&[
                    (PhoneStyle::IntlDashed, 3),
                    (PhoneStyle::Dashed, 5),
                    (PhoneStyle::Plain, 2),
                ])
            })
        });
        let phone = style
            .and_then(|style| person.phone.map(|p| p.used(style)))
            .map(|(raw, used)| {
                identifiers.push(used);
                raw
            });
        let value = json!({"account_id": account, "email": email, "phone": phone});
        (value, identifiers)
    }
}

/// What a customer types, by topic.
fn user_text(dice: &mut crate::dice::Dice, topic: Topic) -> &'static str {
    let texts: &[&'static str] = match topic {
        Topic::Billing => &["I was charged twice this month", "where is my refund?"],
        Topic::Delivery => &["where is my order?", "my parcel arrived damaged"],
        Topic::Account => &["I cannot log in to my account", "how do I change my email?"],
        Topic::Product => &["does this come in another size?", "is this back in stock?"],
        Topic::Technical => &["the app keeps crashing", "payment page shows an error"],
        Topic::Other => &["hello", "can I talk to a person?"],
    };
    dice.pick(texts)
}

const BOT_TEXTS: [&str; 4] = [
    "I can help with that.",
    "Let me look that up for you.",
    "Here is an article that may help.",
    "Could you tell me your order number?",
];
