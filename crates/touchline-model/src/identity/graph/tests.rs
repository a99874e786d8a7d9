//! Internals of the graph: offsets, links, dirty tracking, memory accounting.
//! The SPEC's cases and the invariants are in `tests/identity_*.rs`.

use super::*;

fn id(typed: &str) -> Identifier {
    Identifier::parse(typed).expect("valid identifier")
}

fn ids(typed: &[&str]) -> Vec<Identifier> {
    typed.iter().map(|t| id(t)).collect()
}

#[test]
fn offsets_past_four_gib() {
    let offsets = [
        0,
        10,
        u64::from(u32::MAX) - 1,
        u64::from(u32::MAX) + 5,
        u64::from(u32::MAX) + 6,
        3 << 32,
        (3 << 32) + 7,
    ];
    let mut wraps = Vec::new();
    for (node, &offset) in offsets.iter().enumerate() {
        note_offset(&mut wraps, node as u32, offset);
    }
    assert_eq!(wraps, [3, 5, 5]);
    for (node, &offset) in offsets.iter().enumerate() {
        assert_eq!(
            full_offset(&wraps, node, offset as u32),
            offset,
            "node {node}"
        );
    }
}

#[test]
fn customer_id_is_sha256_of_the_normal_form() {
    // printf 'account:AC1' | sha256sum | cut -c1-16
    let c = customer_id(&id("account:AC1"));
    assert_eq!(c.as_string(), format!("c_{:016x}", c.as_u64()));
    assert_eq!(c.to_string(), "c_307089abdd110e8d");
    assert_eq!(CustomerId::of(&id("account: AC1")), c);
    assert_ne!(customer_id(&id("email:ac1@x.com")), c);
}

#[test]
fn link_is_idempotent() {
    let mut g = IdentityGraph::new();
    let event = ids(&["email:a@x.com", "phone:+821012345678", "device:d1"]);
    g.link(&event);
    assert_eq!((g.len(), g.links()), (3, 3));
    assert_eq!(g.take_changes().len(), 3);
    g.link(&event);
    g.link(&event[..2]);
    g.link(&[event[2].clone(), event[0].clone(), event[2].clone()]);
    assert_eq!((g.len(), g.links()), (3, 3));
    assert!(g.dirty.list.is_empty());
    assert!(g.take_changes().is_empty());
}

#[test]
fn single_identifier_is_its_own_customer() {
    let mut g = IdentityGraph::new();
    let v = id("visitor:v1");
    g.link(std::slice::from_ref(&v));
    assert_eq!(g.customer_of(&v), Some(customer_id(&v)));
    assert_eq!(g.take_changes(), [(v.clone(), customer_id(&v))]);
    assert_eq!(g.customer_of(&id("visitor:v2")), None);
    assert_eq!(g.customer_of_event(&[]), None);
}

#[test]
fn has_edge_walks_both_lists() {
    let mut g = IdentityGraph::new();
    let hub = id("device:shared");
    for i in 0..100 {
        g.link(&[hub.clone(), id(&format!("visitor:v{i}"))]);
    }
    let node = |kind, value| g.index.get(&g.store, kind, value).expect("linked");
    let hub_node = node(IdKind::Device, "shared");
    let leaf = node(IdKind::Visitor, "v0");
    let other = node(IdKind::Visitor, "v1");
    assert!(g.store.has_edge(hub_node, leaf));
    assert!(g.store.has_edge(leaf, hub_node));
    assert!(!g.store.has_edge(leaf, other));
    assert_eq!(g.store.neighbours(hub_node).count(), 100);
    assert_eq!(g.links(), 100);
}

#[test]
fn pending_links_show_in_lookups_before_take_changes() {
    let mut g = IdentityGraph::new();
    let (email, phone, acct) = (
        id("email:a@x.com"),
        id("phone:+821012345678"),
        id("account:AC1"),
    );
    g.link(&[email.clone(), phone.clone()]);
    g.take_changes();
    g.link(&[phone.clone(), acct.clone()]);
    assert_eq!(g.anchor_of(&email), Some(acct.clone()));
    assert_eq!(g.customer_of(&email), Some(customer_id(&acct)));
    let mut changes = g.take_changes();
    changes.sort();
    let want = customer_id(&acct);
    assert_eq!(changes, [(acct, want), (email, want), (phone, want)]);
}

#[test]
fn heap_bytes_counts_capacities() {
    let mut g = IdentityGraph::new();
    let empty = g.heap_bytes();
    for i in 0..1000 {
        g.link(&[
            id(&format!("account:AC{i}")),
            id(&format!("email:user{i}@example.com")),
        ]);
    }
    g.take_changes();
    let bytes = g.heap_bytes();
    assert!(bytes > empty);
    // At least the arena, a 16-byte record per node, two half-edges per link.
    let floor = g.store.bytes.len() + g.len() * 16 + g.links() * 16;
    assert!(bytes >= floor, "{bytes} < {floor}");
    assert!(format!("{g:?}").contains("identifiers: 2000"));
}

#[test]
fn with_capacity_holds_the_same_graph() {
    let mut a = IdentityGraph::with_capacity(100);
    let mut b = IdentityGraph::new();
    for g in [&mut a, &mut b] {
        g.link(&ids(&["email:a@x.com", "device:d"]));
        g.link(&ids(&["device:d", "account:A"]));
    }
    let (mut ca, mut cb) = (a.take_changes(), b.take_changes());
    ca.sort();
    cb.sort();
    assert_eq!(ca, cb);
}

#[test]
fn a_merge_reports_the_customer_its_identifiers_left() {
    let (email, phone) = (id("email:kim@example.com"), id("phone:+821012345678"));
    let mut g = IdentityGraph::new();
    g.link(std::slice::from_ref(&email));
    g.link(std::slice::from_ref(&phone));
    g.take_changes();
    assert!(
        g.take_left_anchors().is_empty(),
        "new identifiers left no one"
    );
    g.link(&[email.clone(), phone.clone()]);
    assert_eq!(g.take_changes(), [(phone.clone(), customer_id(&email))]);
    assert_eq!(g.take_left_anchors(), std::slice::from_ref(&phone));
    assert!(g.take_left_anchors().is_empty(), "taken once");
}
