//! Social threads as the engagement tool captures them (`social.v1`; key
//! thread_id): a customer's mention, direct message or review, the brand's
//! replies, sometimes the brand's closing reply marked resolved.

use serde_json::{json, Value};
use touchline_model::{Channel, Topic};

use super::{rating, topic_label, EventFacts, Outcome, RawScores, Sim};
use crate::people::{EmailStyle, Handle, Person, PhoneStyle, Platform};
use crate::scenario::{HOUR_MS, MINUTE_MS};
use crate::truth::{ContactFacts, IdentifierUse, Role};

/// How a scripted thread must go; `None` leaves it to chance.
#[derive(Debug, Clone)]
pub(crate) struct SocialOpts {
    pub(crate) topic: Topic,
    /// A review rather than a conversation.
    pub(crate) review: bool,
    /// A direct-message thread (else a public mention).
    pub(crate) direct: Option<bool>,
    /// Forces an agent verification, the linked customer's email in this style.
    pub(crate) verify_email: Option<EmailStyle>,
}

impl SocialOpts {
    pub(crate) fn new(topic: Topic, review: bool) -> Self {
        SocialOpts {
            topic,
            review,
            direct: None,
            verify_email: None,
        }
    }
}

/// One message of a thread.
struct Message {
    kind: &'static str,
    by_brand: bool,
    at_ms: i64,
    text: &'static str,
    sentiment: Option<&'static str>,
    rating: Option<i32>,
    /// The agent's tag, as written, and the topic it names.
    topic: Option<(String, Topic)>,
    resolved: Option<bool>,
    linked: Option<(Value, Vec<IdentifierUse>)>,
}

impl Message {
    fn new(kind: &'static str, by_brand: bool, at_ms: i64, text: &'static str) -> Self {
        Message {
            kind,
            by_brand,
            at_ms,
            text,
            sentiment: None,
            rating: None,
            topic: None,
            resolved: None,
            linked: None,
        }
    }
}

const OFF_TOPIC_TAGS: [&str; 3] = ["other", "general", "praise"];

impl Sim<'_> {
    fn platform_id(&mut self, platform: Platform, thread: bool) -> String {
        self.ids.draw(&mut self.dice, |d| match (platform, thread) {
            (Platform::X, _) => d.digits(19),
            (Platform::Facebook, true) => format!("t_{}", d.digits(15)),
            (Platform::Facebook, false) => format!("m_{}", d.digits(15)),
            (Platform::Instagram, _) => d.digits(17),
            (Platform::Kakao, true) => format!("kc-{}", d.hex(10)),
            (Platform::Kakao, false) => format!("km-{}", d.hex(12)),
        })
    }

    fn tag(&mut self, topic: Topic) -> (String, Topic) {
        let label = topic_label(&mut self.dice, topic, &OFF_TOPIC_TAGS);
        (label, topic)
    }

    fn customer_sentiment(&mut self, negative: bool) -> Option<&'static str> {
        if negative {
            self.dice.weighted(&[
                (Some("NEGATIVE"), 60),
                (Some("NEUTRAL"), 25),
                (Some("POSITIVE"), 5),
                (None, 10),
            ])
        } else {
            self.dice
                .weighted(&[(Some("POSITIVE"), 50), (Some("NEUTRAL"), 40), (None, 10)])
        }
    }

    /// One thread of `person` starting at `t0`; `None` when the person has
    /// no social account.
    pub(crate) fn social(
        &mut self,
        person: &Person,
        t0: i64,
        opts: &SocialOpts,
    ) -> Option<Outcome> {
        let handle = self.dice.choose(&person.handles)?.clone();
        let mut messages = Vec::new();
        let mut t = t0;
        let resolved;
        if opts.review {
            let happy = self.dice_chance(0.4);
            let stars = rating(&mut self.dice, 1, 5, happy, &[0, 6]);
            let mood = match stars {
                4.. => Some("POSITIVE"),
                3 => Some("NEUTRAL"),
                _ => Some("NEGATIVE"),
            };
            let mut review = Message::new("REVIEW", false, t, "Honest review of my order");
            review.rating = Some(stars);
            review.sentiment = mood;
            review.topic = self.dice_chance(0.5).then(|| self.tag(opts.topic));
            messages.push(review);
            resolved = if self.dice_chance(0.6) {
                t += self.dice.int(HOUR_MS, 24 * HOUR_MS);
                let mut reply = Message::new("REPLY", true, t, "Thank you for your review.");
                reply.topic = Some(self.tag(opts.topic));
                let closed = self.dice_chance(0.3);
                reply.resolved = closed.then_some(true);
                messages.push(reply);
                closed
            } else {
                false
            };
        } else {
            let direct = opts.direct.unwrap_or_else(|| self.dice.chance(0.5));
            let first_kind = if direct { "DIRECT_MESSAGE" } else { "MENTION" };
            let follow_kind = if direct { "DIRECT_MESSAGE" } else { "REPLY" };
            let mut first =
                Message::new(first_kind, false, t, "still waiting for a fix, not happy");
            first.sentiment = self.customer_sentiment(true);
            first.topic = self.dice_chance(0.4).then(|| self.tag(opts.topic));
            messages.push(first);
            let verify = direct
                && person.account.is_some()
                && (opts.verify_email.is_some() || self.dice.chance(0.4));
            if self.dice_chance(0.85) || verify {
                t += self.dice.int(5 * MINUTE_MS, 8 * HOUR_MS);
                let mut reply = Message::new(
                    "REPLY",
                    true,
                    t,
                    if verify {
                        "Sorry to hear that! Can you DM us your account details?"
                    } else {
                        "Sorry to hear that, we are looking into it."
                    },
                );
                reply.topic = self.dice_chance(0.9).then(|| self.tag(opts.topic));
                reply.sentiment = self.dice_chance(0.5).then_some("NEUTRAL");
                messages.push(reply);
                for round in 0..self.dice.int(i64::from(verify), 2) {
                    t += self.dice.int(2 * MINUTE_MS, 3 * HOUR_MS);
                    let mut answer = Message::new(follow_kind, false, t, "here are my details");
                    answer.sentiment = self.customer_sentiment(round > 0);
                    answer.topic = self.dice_chance(0.7).then(|| self.tag(opts.topic));
                    if verify && round == 0 {
                        answer.linked = Some(self.linked_customer(person, opts.verify_email));
                    }
                    messages.push(answer);
                    t += self.dice.int(5 * MINUTE_MS, 4 * HOUR_MS);
                    let mut reply =
                        Message::new("REPLY", true, t, "Thanks, we have updated your case.");
                    reply.topic = Some(self.tag(opts.topic));
                    messages.push(reply);
                }
                let close = self
                    .dice
                    .weighted(&[(Some(true), 55), (Some(false), 15), (None, 30)]);
                if let Some(closed) = close {
                    t += self.dice.int(10 * MINUTE_MS, 6 * HOUR_MS);
                    let text = if closed {
                        "Glad we could help. Closing this case."
                    } else {
                        "We could not solve this here; please call us so we can look deeper."
                    };
                    let mut last = Message::new("REPLY", true, t, text);
                    last.topic = Some(self.tag(opts.topic));
                    last.resolved = Some(closed);
                    messages.push(last);
                }
                resolved = close == Some(true);
            } else {
                resolved = false;
            }
        }
        self.publish_thread(person, &handle, messages);
        Some(Outcome {
            end_ms: t,
            resolved,
        })
    }

    fn dice_chance(&mut self, p: f64) -> bool {
        self.dice.chance(p)
    }

    /// The customer an agent verified in a direct message.
    fn linked_customer(
        &mut self,
        person: &Person,
        email: Option<EmailStyle>,
    ) -> (Value, Vec<IdentifierUse>) {
        let d = &mut self.dice;
        let mut identifiers = Vec::new();
        let mut take = |pair: Option<(String, IdentifierUse)>| {
            pair.map(|(raw, used)| {
                identifiers.push(used);
                raw
            })
        };
        let account = take(person.account_used(d));
        let email = match email {
            Some(style) => take(person.email_styled(style)),
            None if d.chance(0.6) => take(person.email_used(d)),
            None => None,
        };
        let phone = if d.chance(0.4) {
            let style = d.pick(&[PhoneStyle::Dashed, PhoneStyle::Plain]);
            take(person.phone.map(|p| p.used(style)))
        } else {
            None
        };
        let value = json!({"account_id": account, "email": email, "phone": phone});
        (value, identifiers)
    }

    fn publish_thread(&mut self, person: &Person, handle: &Handle, messages: Vec<Message>) {
        let platform = handle.platform;
        let thread = self.platform_id(platform, true);
        let contact = format!("social:{}:{thread}", platform.lower());
        let lang = self
            .dice
            .weighted(&[(Some("ko"), 70), (Some("en"), 25), (None, 5)]);
        let mut previous: Option<String> = None;
        for message in messages {
            let id = self.platform_id(platform, false);
            let (author, identifiers) = if message.by_brand {
                (platform.brand_handle().to_owned(), Vec::new())
            } else {
                let (raw, used) = handle.used(&mut self.dice);
                let mut identifiers = vec![used];
                if let Some((_, linked)) = &message.linked {
                    identifiers.extend(linked.iter().cloned());
                }
                (raw, identifiers)
            };
            let created_s = message.at_ms.div_euclid(1000);
            let document = json!({
                "id": id,
                "platform": platform.symbol(),
                "kind": message.kind,
                "thread_id": thread,
                "in_reply_to": previous,
                "author_handle": author,
                "author_is_brand": message.by_brand,
                "created_at_epoch_s": created_s,
                "text": message.text,
                "lang": lang,
                "sentiment_label": message.sentiment,
                "rating": message.rating,
                "topic": message.topic.as_ref().map(|(label, _)| label),
                "resolved": message.resolved,
                "linked_customer": message.linked.as_ref().map_or(Value::Null, |(v, _)| v.clone()),
            });
            let sentiment = message.sentiment.map(|label| match label {
                "POSITIVE" => 1.0,
                "NEGATIVE" => -1.0,
                _ => 0.0,
            });
            let facts = EventFacts {
                event_id: format!("{}:{id}", platform.lower()),
                channel: Channel::Social,
                occurred_at_ms: created_s * 1000,
                topic: message.topic.as_ref().map_or(Topic::Other, |(_, t)| *t),
                contact_id: Some(contact.clone()),
                kind: message.kind.to_owned(),
                schema: "social.v1",
                scores: RawScores {
                    csat: if message.kind == "REVIEW" {
                        message.rating
                    } else {
                        None
                    },
                    sentiment,
                    ..RawScores::default()
                },
                client_offset_ms: None,
                identifiers,
                contact: ContactFacts {
                    role: Some(if message.by_brand {
                        Role::Responder
                    } else {
                        Role::Customer
                    }),
                    resolves: message.resolved.filter(|_| message.by_brand),
                    wait_seconds: None,
                    handle_seconds: None,
                },
            };
            // The tool polls the platforms every few minutes.
            let published = message.at_ms + self.dice.int(5_000, 300_000);
            self.emit(person, &thread, document, facts, published);
            previous = Some(id);
        }
    }
}
