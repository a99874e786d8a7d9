//! Data-driven tests: messy values as the source systems write them, and
//! their normal forms (`None`: dropped, with the reason).

use super::*;

/// `(kind, raw, normal form or the reason it is dropped)`.
const CASES: &[(IdKind, &str, Result<&str, &str>)] = &[
    // Accounts: trimmed, nothing else.
    (IdKind::Account, "AC1000296", Ok("account:AC1000296")),
    (IdKind::Account, "  AC1000296 ", Ok("account:AC1000296")),
    (
        IdKind::Account,
        "\tAC 1000 296\n",
        Ok("account:AC 1000 296"),
    ),
    (IdKind::Account, "ac1000296", Ok("account:ac1000296")),
    (IdKind::Account, "", Err("empty")),
    (IdKind::Account, "   ", Err("empty")),
    // Emails: trimmed, lower case, one `@` with text on both sides, `.` in the domain.
    (
        IdKind::Email,
        "minji.kim42@example.com",
        Ok("email:minji.kim42@example.com"),
    ),
    (
        IdKind::Email,
        "Minji.Kim42@Example.COM",
        Ok("email:minji.kim42@example.com"),
    ),
    (
        IdKind::Email,
        "  MINJI.KIM42@EXAMPLE.COM  ",
        Ok("email:minji.kim42@example.com"),
    ),
    (
        IdKind::Email,
        "\tjun@mail.example.org\r\n",
        Ok("email:jun@mail.example.org"),
    ),
    (IdKind::Email, "a@b.c", Ok("email:a@b.c")),
    (IdKind::Email, "a@.com", Ok("email:a@.com")),
    (
        IdKind::Email,
        "Ünal@Example.de",
        Ok("email:ünal@example.de"),
    ),
    (IdKind::Email, "a@b", Err("invalid_email")),
    (IdKind::Email, "@x.com", Err("invalid_email")),
    (IdKind::Email, "a@@b.com", Err("invalid_email")),
    (IdKind::Email, "a@b@c.com", Err("invalid_email")),
    (
        IdKind::Email,
        "minji.kim42.example.com",
        Err("invalid_email"),
    ),
    (IdKind::Email, "minji@", Err("invalid_email")),
    (IdKind::Email, "", Err("empty")),
    (IdKind::Email, " \t ", Err("empty")),
    // Phones: libphonenumber, default region KR, E.164.
    (IdKind::Phone, "010-1234-5678", Ok("phone:+821012345678")),
    (IdKind::Phone, "+82 10 1234 5678", Ok("phone:+821012345678")),
    (IdKind::Phone, "+82-10-1234-5678", Ok("phone:+821012345678")),
    (IdKind::Phone, "01012345678", Ok("phone:+821012345678")),
    (IdKind::Phone, "821012345678", Ok("phone:+821012345678")),
    (IdKind::Phone, "+821012345678", Ok("phone:+821012345678")),
    (IdKind::Phone, " 010 1234 5678 ", Ok("phone:+821012345678")),
    (IdKind::Phone, "010.1234.5678", Ok("phone:+821012345678")),
    (
        IdKind::Phone,
        "+82 (0)10 1234 5678",
        Ok("phone:+821012345678"),
    ),
    (
        IdKind::Phone,
        "+82 10-1234-5678 ext. 12",
        Ok("phone:+821012345678"),
    ),
    (IdKind::Phone, "02-312-3456", Ok("phone:+8223123456")),
    (IdKind::Phone, "(02) 312-3456", Ok("phone:+8223123456")),
    (IdKind::Phone, "031-123-4567", Ok("phone:+82311234567")),
    (IdKind::Phone, "1588-1234", Ok("phone:+8215881234")),
    (IdKind::Phone, "+1 650 253 0000", Ok("phone:+16502530000")),
    (IdKind::Phone, "+1-212-555-0100", Ok("phone:+12125550100")),
    (IdKind::Phone, "+81 90 1234 5678", Ok("phone:+819012345678")),
    (IdKind::Phone, "+81 3-1234-5678", Ok("phone:+81312345678")),
    (IdKind::Phone, "+44 20 7946 0958", Ok("phone:+442079460958")),
    (IdKind::Phone, "010-1234", Err("invalid_phone")),
    (IdKind::Phone, "010-1234-56", Err("invalid_phone")),
    (IdKind::Phone, "12345", Err("invalid_phone")),
    (IdKind::Phone, "1 650 253 0000", Err("invalid_phone")),
    (IdKind::Phone, "+1 555 0100", Err("invalid_phone")),
    (IdKind::Phone, "private", Err("invalid_phone")),
    (IdKind::Phone, "anonymous", Err("anonymous_phone")),
    (IdKind::Phone, "Anonymous", Err("anonymous_phone")),
    (IdKind::Phone, " ANONYMOUS ", Err("anonymous_phone")),
    (IdKind::Phone, "", Err("empty")),
    // Social: `<platform>:<handle>`, lower case, no leading `@`.
    (
        IdKind::Social,
        "instagram:@Kim_J",
        Ok("social:instagram:kim_j"),
    ),
    (
        IdKind::Social,
        "instagram: kim_j ",
        Ok("social:instagram:kim_j"),
    ),
    (
        IdKind::Social,
        "INSTAGRAM:KIM_J",
        Ok("social:instagram:kim_j"),
    ),
    (
        IdKind::Social,
        " X :@@MinJi_Kim12",
        Ok("social:x:minji_kim12"),
    ),
    (IdKind::Social, "x:@ kim", Ok("social:x:kim")),
    (IdKind::Social, "x:a:b", Ok("social:x:a:b")),
    (IdKind::Social, "x:@", Err("empty")),
    (IdKind::Social, "x:  ", Err("empty")),
    (IdKind::Social, " :kim", Err("invalid_platform")),
    (IdKind::Social, "kim", Err("not_typed")),
    // Devices and visitors: trimmed.
    (
        IdKind::Device,
        "3f2c9a1e-7b44-4c1d-9a0e-5d6b7c8d9e0f",
        Ok("device:3f2c9a1e-7b44-4c1d-9a0e-5d6b7c8d9e0f"),
    ),
    (IdKind::Device, " dev-1 ", Ok("device:dev-1")),
    (IdKind::Device, "Dev-1", Ok("device:Dev-1")),
    (IdKind::Device, "", Err("empty")),
    (IdKind::Visitor, "v-9f8e", Ok("visitor:v-9f8e")),
    (IdKind::Visitor, "\n", Err("empty")),
];

#[test]
fn normal_forms() {
    assert!(CASES.len() >= 40);
    for &(kind, raw, expected) in CASES {
        let got = Identifier::new(kind, raw)
            .map(|id| id.as_string())
            .map_err(|e| e.reason());
        assert_eq!(got.as_deref().map_err(|e| *e), expected, "{kind} {raw:?}");
    }
}

#[test]
fn normal_forms_parse_back_to_themselves() {
    for &(kind, raw, _) in CASES {
        let Ok(id) = Identifier::new(kind, raw) else {
            continue;
        };
        let typed = id.as_string();
        assert_eq!(Identifier::parse(&typed), Ok(id.clone()), "{typed}");
        assert_eq!(typed.parse::<Identifier>(), Ok(id), "{typed}");
    }
}

#[test]
fn normal_forms_parse_back_without_libphonenumber_to_the_same_identifier() {
    for &(kind, raw, _) in CASES {
        let Ok(id) = Identifier::new(kind, raw) else {
            continue;
        };
        assert_eq!(Identifier::parse_normal(&id.as_string()), Ok(id));
    }
    // What is not a normal form is normalised as `parse` does it.
    for typed in [
        "phone:010-1234-5678",
        "phone:+82 10 1234 5678",
        "phone:821012345678",
        "phone:+0821012345678",
        "phone:+82",
        "phone:anonymous",
        "email: X@Y.Z ",
        "Email:x@y.z",
        "x@y.z",
    ] {
        assert_eq!(
            Identifier::parse_normal(typed),
            Identifier::parse(typed),
            "{typed}"
        );
    }
}

#[test]
fn typed_strings() {
    let cases: &[(&str, Result<&str, &str>)] = &[
        ("email:x@y.z", Ok("email:x@y.z")),
        ("email: X@Y.Z ", Ok("email:x@y.z")),
        ("phone:010-1234-5678", Ok("phone:+821012345678")),
        ("social:instagram:@Kim_J", Ok("social:instagram:kim_j")),
        ("account: AC1 ", Ok("account:AC1")),
        ("device:d", Ok("device:d")),
        ("visitor:v", Ok("visitor:v")),
        ("Email:x@y.z", Err("not_typed")),
        ("mail:x@y.z", Err("not_typed")),
        ("x@y.z", Err("not_typed")),
        ("email:", Err("empty")),
        ("phone:anonymous", Err("anonymous_phone")),
    ];
    for &(typed, expected) in cases {
        let got = Identifier::parse(typed)
            .map(|id| id.to_string())
            .map_err(|e| e.reason());
        assert_eq!(got.as_deref().map_err(|e| *e), expected, "{typed}");
    }
}

#[test]
fn one_email_in_three_letter_cases_is_one_identifier() {
    let forms = [
        "minji@example.com",
        "Minji@Example.com",
        " MINJI@EXAMPLE.COM",
    ];
    let ids: Vec<_> = forms.iter().map(|f| Identifier::email(f)).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
}

#[test]
fn anchor_order_is_kind_then_value() {
    let kinds: Vec<_> = IdKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["account", "email", "phone", "social", "device", "visitor"]
    );
    assert!(IdKind::ALL.windows(2).all(|w| w[0] < w[1]));
    for kind in IdKind::ALL {
        assert_eq!(IdKind::from_rank(kind.rank()), Some(kind));
        assert_eq!(IdKind::from_prefix(kind.as_str()), Some(kind));
    }
    let mut ids: Vec<Identifier> = [
        "visitor:a",
        "device:a",
        "email:b@x.com",
        "account:Z",
        "email:a@x.com",
        "phone:+821012345678",
        "social:x:a",
        "account:A",
    ]
    .iter()
    .map(|typed| Identifier::parse(typed).expect("valid"))
    .collect();
    ids.sort();
    let sorted: Vec<String> = ids.iter().map(Identifier::as_string).collect();
    assert_eq!(
        sorted,
        [
            "account:A",
            "account:Z",
            "email:a@x.com",
            "email:b@x.com",
            "phone:+821012345678",
            "social:x:a",
            "device:a",
            "visitor:a",
        ]
    );
}
