//! The derive reads return only the newest version of each row, even when
//! ClickHouse has not merged the versions away yet: merges are stopped, so
//! every superseded version sits in a part of its own, and each read must
//! drop it, whether it reads through `FINAL` (filtering on sorting-key
//! columns, in `PREWHERE`) or reads every version and keeps the newest
//! itself, and whether it finds a customer's rows or reads whole tables.

use touchline_clickhouse::derived::{
    self, ConsistencyDayRow, ContactFactRow, ContactRow, Reads, Scope, ScoreRow,
};
use touchline_clickhouse::{migrate, ClickHouseConfig, IdentityRow, Table, Warehouse};
use touchline_model::metrics::ConsistencyDay;
use touchline_model::{Channel, Topic};
use touchline_tests::TestEnv;

const DAY: u16 = 20_000;
const DAY_MS: i64 = DAY as i64 * 86_400_000;

fn fact(version: u64, topic: Topic, identity_key: &str) -> ContactFactRow {
    ContactFactRow {
        contact_id: "chatbot:conv-1".into(),
        event_id: "e-1".into(),
        channel: Channel::Chatbot.code(),
        occurred_at_ms: DAY_MS,
        topic: topic.code(),
        role: 1,
        opens: 1,
        resolves: None,
        hands_off: 0,
        wait_seconds: None,
        handle_seconds: None,
        abandoned: 0,
        csat: None,
        ces: None,
        nps: None,
        identity_key: identity_key.into(),
        identity_rank: 0,
        version,
    }
}

fn contact(version: u64, started_at_ms: i64, identity_key: &str) -> ContactRow {
    ContactRow {
        contact_id: "chatbot:conv-1".into(),
        channel: Channel::Chatbot.code(),
        topic: Topic::Billing.code(),
        started_at: u32::try_from(started_at_ms / 1000).expect("a time after 1970"),
        started_at_ms,
        resolved: 1,
        handed_off: 0,
        abandoned: 0,
        csat: None,
        ces: None,
        nps: None,
        first_response_ms: None,
        handle_seconds: None,
        events: 1,
        identity_key: identity_key.into(),
        version,
    }
}

fn assignment(identifier: &str, customer_id: &str, version: u64) -> IdentityRow {
    IdentityRow {
        identifier: identifier.into(),
        customer_id: customer_id.into(),
        anchor: identifier.into(),
        version,
        updated_at: 0,
    }
}

/// Inserts each version in an insert of its own: a part each.
async fn insert_versions<T: Table>(warehouse: &Warehouse, versions: Vec<T>) {
    for row in versions {
        warehouse.insert(&[row]).await.expect("insert");
    }
}

/// What `read` finds, which must be the same whether the reads run one
/// after another or at once, and whether they find their rows or read
/// whole tables.
async fn in_every_way<T, F, Fut>(what: &str, read: F) -> T
where
    T: PartialEq + std::fmt::Debug,
    F: Fn(Scope, Reads) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let first = read(Scope::Listed, Reads::InTurn).await;
    for (scope, reads) in [
        (Scope::Listed, Reads::AtOnce),
        (Scope::Whole, Reads::InTurn),
        (Scope::Whole, Reads::AtOnce),
    ] {
        assert_eq!(
            read(scope, reads).await,
            first,
            "{what}: {scope:?} {reads:?} against Listed InTurn"
        );
    }
    first
}

/// The versions of the contacts and the CSAT scores a day is computed from.
async fn day(warehouse: &Warehouse, day: u16) -> (Vec<u64>, Vec<Option<u8>>) {
    in_every_way(&format!("{day}'s inputs"), |scope, reads| async move {
        let mut inputs = derived::day_inputs(warehouse, &[day], reads, scope)
            .await
            .expect("day inputs");
        let of_day = inputs.remove(&day).unwrap_or_default();
        assert!(
            inputs.is_empty(),
            "inputs of days not asked for ({scope:?}): {inputs:?}"
        );
        (
            of_day.contacts.iter().map(|c| c.version).collect(),
            of_day.scores.iter().map(|s| s.csat).collect(),
        )
    })
    .await
}

/// The versions of the contacts and the CSAT scores a customer is computed
/// from.
async fn customer(warehouse: &Warehouse, id: &str) -> (Vec<u64>, Vec<(Channel, u8)>) {
    in_every_way(&format!("{id}'s inputs"), |scope, reads| async move {
        let inputs = derived::customer_inputs(warehouse, &[id], reads, scope)
            .await
            .expect("customer inputs");
        let [of_customer] = <[_; 1]>::try_from(inputs).expect("one customer's inputs");
        (
            of_customer.contacts.iter().map(|c| c.version).collect(),
            of_customer.csat,
        )
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_only_the_newest_version_of_unmerged_rows() {
    let env = TestEnv::new("derived_reads");
    let warehouse = Warehouse::connect(&ClickHouseConfig {
        url: env.stack.clickhouse_url.clone(),
        database: env.database.clone(),
        user: "default".into(),
        password: String::new(),
    })
    .await
    .expect("ClickHouse");
    migrate::migrate(&warehouse).await.expect("migrations");
    for table in [
        "contact_facts",
        "contacts",
        "identity_assignments",
        "scores",
    ] {
        env.execute(&format!("SYSTEM STOP MERGES {{db}}.{table}"))
            .await;
    }

    // Late events moved the contact to another key, topic and day: from
    // `email:a` on DAY to `email:c` (customer C) on DAY + 1, and back; and
    // `email:a` moved from customer A to customer B.
    insert_versions(
        &warehouse,
        vec![
            fact(1, Topic::Billing, "email:c"),
            fact(2, Topic::Delivery, "email:a"),
        ],
    )
    .await;
    insert_versions(
        &warehouse,
        vec![
            contact(1, DAY_MS, "email:a"),
            contact(2, DAY_MS + 86_400_000, "email:c"),
            contact(3, DAY_MS, "email:a"),
        ],
    )
    .await;
    insert_versions(
        &warehouse,
        vec![
            // The newer first: the order of parts must not matter.
            assignment("email:a", "c_B", 2),
            assignment("email:c", "c_C", 1),
            assignment("email:a", "c_A", 1),
        ],
    )
    .await;
    let score = |version, csat| ScoreRow {
        day: DAY,
        channel: Channel::Chatbot.code(),
        event_id: "e-1".into(),
        identity_key: "email:a".into(),
        csat: Some(csat),
        ces: None,
        nps: None,
        sentiment: None,
        version,
    };
    insert_versions(&warehouse, vec![score(1, 1), score(2, 5)]).await;
    let parts = env
        .count("SELECT count() FROM system.parts WHERE database = '{db}' AND active")
        .await;
    assert!(
        parts >= 10,
        "every version in a part of its own, got {parts} parts"
    );

    let facts = derived::contact_facts(&warehouse, &["chatbot:conv-1"])
        .await
        .expect("contact facts");
    assert_eq!(facts, vec![fact(2, Topic::Delivery, "email:a")]);
    let owners = derived::customers_of(&warehouse, &["email:a", "email:c"])
        .await
        .expect("owners");
    assert_eq!(owners.get("email:a").map(String::as_str), Some("c_B"));
    assert_eq!(owners.get("email:c").map(String::as_str), Some("c_C"));
    // Three assignment rows: one customer is at least a quarter of them, so
    // its reads take whole tables; none is not.
    for (customers, scope) in [(0, Scope::Listed), (1, Scope::Whole)] {
        assert_eq!(
            Scope::of_customers(&warehouse, customers)
                .await
                .expect("scope"),
            scope,
            "{customers} customers"
        );
    }
    // Three days stored, one in two versions: two days to recompute are at
    // least half of them, so their reads take whole tables; one is not.
    let stored_day =
        |day, version| ConsistencyDayRow::new(day, &ConsistencyDay::default(), version);
    insert_versions(
        &warehouse,
        vec![
            stored_day(DAY, 1),
            stored_day(DAY, 2),
            stored_day(DAY + 1, 1),
            stored_day(DAY + 2, 1),
        ],
    )
    .await;
    for (days, scope) in [(1, Scope::Listed), (2, Scope::Whole)] {
        assert_eq!(
            Scope::of_days(&warehouse, days).await.expect("scope"),
            scope,
            "{days} days"
        );
    }

    // Each read lists only what the superseded version matches, or only
    // what the newest one does.
    assert_eq!(
        day(&warehouse, DAY + 1).await,
        (vec![], vec![]),
        "the contact left DAY + 1"
    );
    assert_eq!(day(&warehouse, DAY).await, (vec![3], vec![Some(5)]));
    assert_eq!(
        customer(&warehouse, "c_A").await,
        (vec![], vec![]),
        "A lost email:a"
    );
    assert_eq!(
        customer(&warehouse, "c_C").await,
        (vec![], vec![]),
        "the contact left email:c"
    );
    assert_eq!(
        customer(&warehouse, "c_B").await,
        (vec![3], vec![(Channel::Chatbot, 5)])
    );

    env.drop_database().await;
}
