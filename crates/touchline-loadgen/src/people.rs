//! Simulated customers: who they are, which identifiers they have, and every
//! messy way the source systems write those identifiers (`SPEC.md` §3).
//!
//! The normal forms here come from what the generator chose (it knows the
//! phone number it wrote in five formats), not from parsing what it wrote.

use std::collections::BTreeSet;

use crate::dice::Dice;
use crate::truth::{IdKind, IdentifierUse};

const GIVEN: [&str; 24] = [
    "minji", "jisoo", "seojun", "hana", "doyun", "yuna", "jiho", "sora", "taeyang", "eunji",
    "hyun", "mina", "jun", "sujin", "dahye", "alex", "sam", "chris", "emma", "noah", "yuki",
    "haruto", "mei", "lena",
];
const SURNAMES: [&str; 16] = [
    "kim", "lee", "park", "choi", "jung", "kang", "cho", "yoon", "jang", "lim", "han", "oh",
    "smith", "tanaka", "sato", "garcia",
];
const DOMAINS: [&str; 4] = [
    "example.com",
    "example.co.kr",
    "example.net",
    "mail.example.org",
];

/// A social platform as the `social.v1` enum spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Platform {
    X,
    Facebook,
    Instagram,
    Kakao,
}

impl Platform {
    pub(crate) const ALL: [Platform; 4] = [
        Platform::X,
        Platform::Facebook,
        Platform::Instagram,
        Platform::Kakao,
    ];

    /// The enum symbol.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Platform::X => "X",
            Platform::Facebook => "FACEBOOK",
            Platform::Instagram => "INSTAGRAM",
            Platform::Kakao => "KAKAO",
        }
    }

    /// Lower case, as in event ids, contact ids and identifiers.
    pub(crate) fn lower(self) -> &'static str {
        match self {
            Platform::X => "x",
            Platform::Facebook => "facebook",
            Platform::Instagram => "instagram",
            Platform::Kakao => "kakao",
        }
    }

    /// The brand's own handle there, as the tool writes it.
    pub(crate) fn brand_handle(self) -> &'static str {
        match self {
            Platform::X => "@TouchlineCare",
            Platform::Facebook => "Touchline",
            Platform::Instagram => "@touchline.official",
            Platform::Kakao => "touchline_cs",
        }
    }
}

/// A Korean mobile number, `010-XXXX-YYYY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Phone {
    /// The eight digits after `010`.
    subscriber: u32,
}

/// The ways phone numbers are written by the source systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PhoneStyle {
    /// `010-1234-5678`
    Dashed,
    /// `+82 10 1234 5678`
    IntlSpaced,
    /// `821012345678`, as some carriers pass the caller id
    CarrierDigits,
    /// `01012345678`
    Plain,
    /// `+82-10-1234-5678`
    IntlDashed,
    /// `+821012345678`
    E164,
}

impl Phone {
    pub(crate) fn format(self, style: PhoneStyle) -> String {
        let head = self.subscriber / 10_000;
        let tail = self.subscriber % 10_000;
        match style {
            PhoneStyle::Dashed => format!("010-{head:04}-{tail:04}"),
            PhoneStyle::IntlSpaced => format!("+82 10 {head:04} {tail:04}"),
            PhoneStyle::CarrierDigits => format!("8210{head:04}{tail:04}"),
            PhoneStyle::Plain => format!("010{head:04}{tail:04}"),
            PhoneStyle::IntlDashed => format!("+82-10-{head:04}-{tail:04}"),
            PhoneStyle::E164 => format!("+8210{head:04}{tail:04}"),
        }
    }

    pub(crate) fn normal(self) -> String {
        format!("phone:{}", self.format(PhoneStyle::E164))
    }

    /// The number typed with its last two digits missing, `010-1234-56`:
    /// nine national digits, which libphonenumber calls invalid.
    pub(crate) fn typo(self) -> IdentifierUse {
        let head = self.subscriber / 10_000;
        let tail = self.subscriber % 10_000 / 100;
        invalid_phone(&format!("010-{head:04}-{tail:02}"))
    }

    /// As written in `style`, with its normal form.
    pub(crate) fn used(self, style: PhoneStyle) -> (String, IdentifierUse) {
        let raw = self.format(style);
        let used = IdentifierUse {
            kind: IdKind::Phone,
            raw: raw.clone(),
            normal: Some(self.normal()),
        };
        (raw, used)
    }
}

/// A caller id or phone field the pipeline must drop.
pub(crate) fn invalid_phone(raw: &str) -> IdentifierUse {
    IdentifierUse {
        kind: IdKind::Phone,
        raw: raw.to_owned(),
        normal: None,
    }
}

/// The app platform of a device, as the `app.v1` enum spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DevicePlatform {
    Ios,
    Android,
    Web,
}

impl DevicePlatform {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            DevicePlatform::Ios => "IOS",
            DevicePlatform::Android => "ANDROID",
            DevicePlatform::Web => "WEB",
        }
    }
}

/// A device with the app installed (or a browser for the web app).
#[derive(Debug, Clone)]
pub(crate) struct Device {
    pub(crate) id: String,
    pub(crate) platform: DevicePlatform,
    pub(crate) app_version: &'static str,
    /// Device clock minus true time, in milliseconds.
    pub(crate) clock_skew_ms: i64,
    /// UTC offset the device reports, in seconds.
    pub(crate) utc_offset_s: i32,
    /// A household's shared device.
    pub(crate) shared: bool,
}

/// A social account of a customer.
#[derive(Debug, Clone)]
pub(crate) struct Handle {
    pub(crate) platform: Platform,
    /// As the customer styles it, e.g. `MinJi_Kim12`.
    pub(crate) display: String,
}

impl Handle {
    /// The handle as one message writes it: with or without `@`, in the
    /// customer's own style or another case.
    pub(crate) fn used(&self, dice: &mut Dice) -> (String, IdentifierUse) {
        let body = match dice.weighted(&[(0, 6), (1, 3), (2, 1)]) {
            0 => self.display.clone(),
            1 => self.display.to_lowercase(),
            _ => self.display.to_uppercase(),
        };
        let raw = if dice.chance(0.5) {
            format!("@{body}")
        } else {
            body
        };
        let used = IdentifierUse {
            kind: IdKind::Social,
            raw: raw.clone(),
            normal: Some(self.normal()),
        };
        (raw, used)
    }

    pub(crate) fn normal(&self) -> String {
        format!(
            "social:{}:{}",
            self.platform.lower(),
            self.display.to_lowercase()
        )
    }
}

/// How an email is written in one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EmailStyle {
    Lower,
    Title,
    Upper,
    /// Lower case with white space around it.
    Padded,
}

/// One simulated customer.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    /// `sim-000042`
    pub(crate) id: String,
    pub(crate) given: &'static str,
    pub(crate) surname: &'static str,
    /// CRM account id, e.g. `AC1000296`.
    pub(crate) account: Option<String>,
    /// Lower case, e.g. `minji.kim42@example.com`.
    pub(crate) email: Option<String>,
    /// An address the app's sign-up form let through although it is not one
    /// (`minji.kim42@localhost`); the pipeline must drop it.
    pub(crate) bad_email: Option<String>,
    pub(crate) phone: Option<Phone>,
    pub(crate) devices: Vec<Device>,
    /// Browser or in-app chat cookies.
    pub(crate) visitors: Vec<String>,
    pub(crate) handles: Vec<Handle>,
    /// Writes identifiers sloppily (spaces, odd cases) more often.
    pub(crate) messy: bool,
    /// Index into the household list.
    pub(crate) household: Option<usize>,
}

impl Person {
    /// The account id as one message writes it.
    pub(crate) fn account_used(&self, dice: &mut Dice) -> Option<(String, IdentifierUse)> {
        let account = self.account.as_ref()?;
        let raw = if dice.chance(if self.messy { 0.5 } else { 0.05 }) {
            match dice.int(0, 2) {
                0 => format!(" {account}"),
                1 => format!("{account} "),
                _ => format!("  {account}  "),
            }
        } else {
            account.clone()
        };
        let used = IdentifierUse {
            kind: IdKind::Account,
            raw: raw.clone(),
            normal: Some(format!("account:{account}")),
        };
        Some((raw, used))
    }

    /// The email in a random style.
    pub(crate) fn email_used(&self, dice: &mut Dice) -> Option<(String, IdentifierUse)> {
        let messy = if self.messy { 3 } else { 1 };
        let style = dice.weighted(&[
            (EmailStyle::Lower, 12),
            (EmailStyle::Title, 2 * messy),
            (EmailStyle::Upper, messy),
            (EmailStyle::Padded, messy),
        ]);
        self.email_styled(style)
    }

    /// The email in a given style.
    pub(crate) fn email_styled(&self, style: EmailStyle) -> Option<(String, IdentifierUse)> {
        let email = self.email.as_ref()?;
        let raw = match style {
            EmailStyle::Lower => email.clone(),
            EmailStyle::Title => title_case_email(email),
            EmailStyle::Upper => email.to_uppercase(),
            EmailStyle::Padded => format!(" {email} "),
        };
        let used = IdentifierUse {
            kind: IdKind::Email,
            raw: raw.clone(),
            normal: Some(format!("email:{email}")),
        };
        Some((raw, used))
    }

    /// The invalid email, if the person has one.
    pub(crate) fn bad_email_used(&self) -> Option<(String, IdentifierUse)> {
        let raw = self.bad_email.clone()?;
        let used = IdentifierUse {
            kind: IdKind::Email,
            raw: raw.clone(),
            normal: None,
        };
        Some((raw, used))
    }

    /// The device's identifier.
    pub(crate) fn device_used(device: &Device) -> IdentifierUse {
        IdentifierUse {
            kind: IdKind::Device,
            raw: device.id.clone(),
            normal: Some(format!("device:{}", device.id)),
        }
    }

    /// A chat visitor cookie's identifier.
    pub(crate) fn visitor_used(visitor: &str) -> IdentifierUse {
        IdentifierUse {
            kind: IdKind::Visitor,
            raw: visitor.to_owned(),
            normal: Some(format!("visitor:{visitor}")),
        }
    }

    /// Full name, as the app's traits carry it.
    pub(crate) fn name(&self) -> String {
        format!("{} {}", capitalise(self.given), capitalise(self.surname))
    }
}

/// `minji.kim42@example.com` -> `Minji.Kim42@Example.com`.
fn title_case_email(email: &str) -> String {
    let mut out = String::with_capacity(email.len());
    let mut start = true;
    for c in email.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = matches!(c, '.' | '@' | '_');
    }
    out
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Which customers play the scripted hard cases.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HardCasePeople {
    /// Writes one email in three letter cases across channels.
    pub(crate) email_cases: usize,
    /// Writes one phone number in five formats across channels.
    pub(crate) phone_formats: usize,
    /// Whose app clock is off by more and by less than 10 minutes, who signs
    /// up with an invalid email, and who answers surveys out of scale.
    pub(crate) clock_drift: usize,
    /// The first household.
    pub(crate) household: [usize; 2],
}

/// Fewest customers for which the hard cases are scripted.
pub(crate) const HARD_CASE_MIN_CUSTOMERS: usize = 6;

/// The simulated population.
pub(crate) struct Population {
    pub(crate) people: Vec<Person>,
    /// Pairs of people sharing a device and a phone number.
    pub(crate) households: Vec<[usize; 2]>,
    pub(crate) hard: Option<HardCasePeople>,
}

/// Makes unique random ids.
#[derive(Default)]
pub(crate) struct UniqueIds(BTreeSet<String>);

impl UniqueIds {
    /// Draws from `make` until the result is new.
    pub(crate) fn draw(
        &mut self,
        dice: &mut Dice,
        mut make: impl FnMut(&mut Dice) -> String,
    ) -> String {
        loop {
            let id = make(dice);
            if self.0.insert(id.clone()) {
                return id;
            }
        }
    }
}

/// Draws `customers` people. Ids embed the person's number, so emails,
/// accounts and handles never collide between people by accident.
pub(crate) fn population(dice: &mut Dice, customers: usize, ids: &mut UniqueIds) -> Population {
    let hard = (customers >= HARD_CASE_MIN_CUSTOMERS).then(|| {
        let mut order: Vec<usize> = (0..customers).collect();
        dice.shuffle(&mut order);
        HardCasePeople {
            email_cases: order[0],
            phone_formats: order[1],
            clock_drift: order[2],
            household: [order[3], order[4]],
        }
    });
    let mut phones = BTreeSet::new();
    let mut people: Vec<Person> = (0..customers)
        .map(|index| person(dice, index, &mut phones, ids))
        .collect();
    let mut households = Vec::new();
    if let Some(hard) = hard {
        for i in [hard.email_cases, hard.phone_formats, hard.clock_drift] {
            complete(dice, &mut people[i], i, &mut phones, ids);
        }
        let drift = &mut people[hard.clock_drift];
        drift.bad_email = Some(format!(
            "{}.{}{}@localhost",
            drift.given, drift.surname, hard.clock_drift
        ));
        households.push(hard.household);
        // One more household per 250 customers, among people with accounts.
        let mut candidates: Vec<usize> = (0..customers)
            .filter(|i| {
                people[*i].account.is_some()
                    && ![
                        hard.email_cases,
                        hard.phone_formats,
                        hard.clock_drift,
                        hard.household[0],
                        hard.household[1],
                    ]
                    .contains(i)
            })
            .collect();
        dice.shuffle(&mut candidates);
        for pair in candidates.chunks_exact(2).take(customers / 250) {
            households.push([pair[0], pair[1]]);
        }
    }
    for (number, pair) in households.iter().enumerate() {
        let [a, b] = *pair;
        complete(dice, &mut people[a], a, &mut phones, ids);
        complete(dice, &mut people[b], b, &mut phones, ids);
        let platform = dice.pick(&[DevicePlatform::Android, DevicePlatform::Ios]);
        let shared = Device {
            id: device_id(dice, platform, ids),
            platform,
            app_version: dice.pick(&APP_VERSIONS),
            clock_skew_ms: dice.int(-20_000, 20_000),
            utc_offset_s: KST,
            shared: true,
        };
        people[a].devices.push(shared.clone());
        people[b].devices.push(shared);
        // The household's phone is a's number; b has none of their own.
        people[b].phone = people[a].phone;
        people[a].household = Some(number);
        people[b].household = Some(number);
    }
    Population {
        people,
        households,
        hard,
    }
}

const KST: i32 = 9 * 3600;
const APP_VERSIONS: [&str; 4] = ["5.2.0", "5.3.1", "5.4.0", "5.4.2"];

fn person(
    dice: &mut Dice,
    index: usize,
    phones: &mut BTreeSet<u32>,
    ids: &mut UniqueIds,
) -> Person {
    let given = dice.pick(&GIVEN);
    let surname = dice.pick(&SURNAMES);
    let mut person = Person {
        id: format!("sim-{index:06}"),
        given,
        surname,
        account: dice.chance(0.85).then(|| account_id(dice, index)),
        email: None,
        bad_email: None,
        phone: None,
        devices: Vec::new(),
        visitors: Vec::new(),
        handles: Vec::new(),
        messy: dice.chance(0.2),
        household: None,
    };
    if person.account.is_some() || dice.chance(0.3) {
        person.email = dice.chance(0.9).then(|| email(dice, given, surname, index));
    }
    if person.email.is_some() && dice.chance(0.03) {
        person.bad_email = Some(format!("{given}.{surname}{index}@localhost"));
    }
    if dice.chance(0.85) {
        person.phone = Some(phone(dice, phones));
    }
    let devices = dice.weighted(&[(0_u32, 3), (1, 5), (2, 2)]);
    for _ in 0..devices {
        person.devices.push(device(dice, ids));
    }
    for _ in 0..dice.int(1, 2) {
        person
            .visitors
            .push(ids.draw(dice, |d| format!("vis_{}", d.hex(16))));
    }
    if dice.chance(0.45) {
        let mut platforms = Platform::ALL;
        dice.shuffle(&mut platforms);
        let count = dice.weighted(&[(1_usize, 3), (2, 1)]);
        for platform in platforms.into_iter().take(count) {
            person
                .handles
                .push(handle(dice, platform, given, surname, index));
        }
    }
    person
}

/// Gives a hard-case person everything the scripted journeys use.
fn complete(
    dice: &mut Dice,
    person: &mut Person,
    index: usize,
    phones: &mut BTreeSet<u32>,
    ids: &mut UniqueIds,
) {
    if person.account.is_none() {
        person.account = Some(account_id(dice, index));
    }
    if person.email.is_none() {
        person.email = Some(email(dice, person.given, person.surname, index));
    }
    if person.phone.is_none() {
        person.phone = Some(phone(dice, phones));
    }
    if !person.devices.iter().any(|d| !d.shared) {
        let mut device = device(dice, ids);
        device.clock_skew_ms = dice.int(-30_000, 30_000);
        person.devices.push(device);
    }
    if person.handles.is_empty() {
        let platform = dice.pick(&Platform::ALL);
        let handle = handle(dice, platform, person.given, person.surname, index);
        person.handles.push(handle);
    }
}

fn account_id(dice: &mut Dice, index: usize) -> String {
    // index * 7 + r with r < 7: unique per person, not sequential.
    let number = 1_000_000 + (index as u64) * 7 + dice.int(0, 6) as u64;
    format!("AC{number}")
}

fn email(dice: &mut Dice, given: &str, surname: &str, index: usize) -> String {
    let domain = dice.pick(&DOMAINS);
    match dice.int(0, 2) {
        0 => format!("{given}.{surname}{index}@{domain}"),
        1 => format!("{given}{index}@{domain}"),
        _ => format!("{}{surname}{index}@{domain}", &given[..1]),
    }
}

/// A new mobile number. Blocks 5xxx are skipped: libphonenumber calls some of
/// 010-59xx-xxxx invalid, and only deliberately invalid numbers may be.
fn phone(dice: &mut Dice, used: &mut BTreeSet<u32>) -> Phone {
    loop {
        let lead = dice.pick(&[2_u32, 3, 4, 6, 7, 8, 9]);
        let subscriber = lead * 10_000_000 + dice.int(0, 9_999_999) as u32;
        if used.insert(subscriber) {
            return Phone { subscriber };
        }
    }
}

fn device_id(dice: &mut Dice, platform: DevicePlatform, ids: &mut UniqueIds) -> String {
    ids.draw(dice, |d| match platform {
        DevicePlatform::Ios => d.uuid().to_uppercase(),
        DevicePlatform::Android => d.hex(16),
        DevicePlatform::Web => format!("web-{}", d.hex(12)),
    })
}

fn device(dice: &mut Dice, ids: &mut UniqueIds) -> Device {
    let platform = dice.weighted(&[
        (DevicePlatform::Android, 5),
        (DevicePlatform::Ios, 4),
        (DevicePlatform::Web, 2),
    ]);
    // Most device clocks are right to within a minute or so; some are badly off.
    let clock_skew_ms = match dice.weighted(&[(0, 90), (1, 6), (2, 4)]) {
        0 => dice.int(-60_000, 60_000),
        1 => dice.int(3 * 60_000, 8 * 60_000) * if dice.chance(0.5) { 1 } else { -1 },
        _ => dice.int(15 * 60_000, 3 * 24 * 3_600_000) * if dice.chance(0.5) { 1 } else { -1 },
    };
    let utc_offset_s = dice.weighted(&[(KST, 90), (0, 6), (-7 * 3600, 2), (3600, 2)]);
    Device {
        id: device_id(dice, platform, ids),
        platform,
        app_version: dice.pick(&APP_VERSIONS),
        clock_skew_ms,
        utc_offset_s,
        shared: false,
    }
}

fn handle(dice: &mut Dice, platform: Platform, given: &str, surname: &str, index: usize) -> Handle {
    let display = match dice.int(0, 2) {
        0 => format!("{}_{}{index}", capitalise(given), capitalise(surname)),
        1 => format!("{given}{surname}{index}"),
        _ => format!("{}{index}", capitalise(given)),
    };
    Handle { platform, display }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_formats() {
        let phone = Phone {
            subscriber: 12_345_678,
        };
        let styles = [
            (PhoneStyle::Dashed, "010-1234-5678"),
            (PhoneStyle::IntlSpaced, "+82 10 1234 5678"),
            (PhoneStyle::CarrierDigits, "821012345678"),
            (PhoneStyle::Plain, "01012345678"),
            (PhoneStyle::IntlDashed, "+82-10-1234-5678"),
            (PhoneStyle::E164, "+821012345678"),
        ];
        for (style, expected) in styles {
            assert_eq!(phone.format(style), expected);
        }
        assert_eq!(phone.normal(), "phone:+821012345678");
        let small = Phone {
            subscriber: 20_000_001,
        };
        assert_eq!(small.format(PhoneStyle::Dashed), "010-2000-0001");
    }

    #[test]
    fn email_styles_share_one_normal_form() {
        let person = Person {
            id: "sim-000001".into(),
            given: "minji",
            surname: "kim",
            account: None,
            email: Some("minji.kim1@example.co.kr".into()),
            bad_email: None,
            phone: None,
            devices: vec![],
            visitors: vec![],
            handles: vec![],
            messy: false,
            household: None,
        };
        let raws: Vec<String> = [
            EmailStyle::Lower,
            EmailStyle::Title,
            EmailStyle::Upper,
            EmailStyle::Padded,
        ]
        .into_iter()
        .map(|s| {
            let (raw, used) = person.email_styled(s).expect("has email");
            assert_eq!(
                used.normal.as_deref(),
                Some("email:minji.kim1@example.co.kr")
            );
            raw
        })
        .collect();
        assert_eq!(
            raws,
            [
                "minji.kim1@example.co.kr",
                "Minji.Kim1@Example.Co.Kr",
                "MINJI.KIM1@EXAMPLE.CO.KR",
                " minji.kim1@example.co.kr "
            ]
        );
    }
}
