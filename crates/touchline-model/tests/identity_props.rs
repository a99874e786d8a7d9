//! Invariants of identity resolution (`SPEC.md` §3): the customers are a
//! function of the set of distinct events, whatever their order, duplicates
//! or partitioning; incremental changes add up to a full resolution; no
//! customer holds two accounts.
//!
//! The graph is checked against a naive reference that follows the SPEC's
//! words literally: components by search, and for two or more accounts one
//! breadth-first search per account, each identifier taking the least
//! `(hops, account)`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proptest::prelude::*;
use touchline_model::identity::{customer_id, CustomerId, IdKind, Identifier, IdentityGraph};

/// Identifiers the events draw from: several accounts, so that merges and
/// two-account splits are common.
const POOL: &[&str] = &[
    "account:AC1",
    "account:AC10",
    "account:AC2",
    "account:B7",
    "email:minji@example.com",
    "email:jun@example.co.kr",
    "email:sora@example.net",
    "phone:+821012345678",
    "phone:+821087654321",
    "phone:+8223123456",
    "social:instagram:kim_j",
    "social:x:kim_j",
    "device:d-1",
    "device:d-2",
    "device:d-3",
    "visitor:v-1",
    "visitor:v-2",
    "visitor:v-3",
];

type Event = Vec<Identifier>;
type Mapping = BTreeMap<Identifier, CustomerId>;

fn pool() -> Vec<Identifier> {
    POOL.iter()
        .map(|typed| Identifier::parse(typed).expect("pool identifiers are normal forms"))
        .collect()
}

fn event() -> impl Strategy<Value = Event> {
    proptest::collection::vec(0..POOL.len(), 1..=4).prop_map(|picks| {
        let pool = pool();
        picks.into_iter().map(|i| pool[i].clone()).collect()
    })
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    proptest::collection::vec(event(), 1..40)
}

/// The SPEC's rules, literally.
struct Reference {
    adjacency: BTreeMap<Identifier, BTreeSet<Identifier>>,
}

impl Reference {
    fn new(events: &[Event]) -> Reference {
        let mut adjacency: BTreeMap<Identifier, BTreeSet<Identifier>> = BTreeMap::new();
        for event in events {
            for a in event {
                let links = adjacency.entry(a.clone()).or_default();
                links.extend(event.iter().filter(|b| *b != a).cloned());
            }
        }
        Reference { adjacency }
    }

    fn hops_from(&self, start: &Identifier) -> BTreeMap<Identifier, usize> {
        let mut hops = BTreeMap::from([(start.clone(), 0)]);
        let mut queue = VecDeque::from([start.clone()]);
        while let Some(u) = queue.pop_front() {
            let next = hops[&u] + 1;
            for v in &self.adjacency[&u] {
                if !hops.contains_key(v) {
                    hops.insert(v.clone(), next);
                    queue.push_back(v.clone());
                }
            }
        }
        hops
    }

    fn components(&self) -> Vec<BTreeSet<Identifier>> {
        let mut seen = BTreeSet::new();
        let mut components = Vec::new();
        for id in self.adjacency.keys() {
            if seen.contains(id) {
                continue;
            }
            let component: BTreeSet<_> = self.hops_from(id).into_keys().collect();
            seen.extend(component.iter().cloned());
            components.push(component);
        }
        components
    }

    fn anchors(&self) -> BTreeMap<Identifier, Identifier> {
        let mut anchors = BTreeMap::new();
        for component in self.components() {
            let accounts: Vec<_> = component
                .iter()
                .filter(|id| id.kind() == IdKind::Account)
                .collect();
            if accounts.len() <= 1 {
                let least = component.first().expect("components are not empty");
                for id in &component {
                    anchors.insert(id.clone(), least.clone());
                }
                continue;
            }
            let hops: Vec<_> = accounts.iter().map(|a| self.hops_from(a)).collect();
            for id in &component {
                let (_, anchor) = accounts
                    .iter()
                    .zip(&hops)
                    .map(|(account, hops)| (hops[id], *account))
                    .min()
                    .expect("two or more accounts");
                anchors.insert(id.clone(), anchor.clone());
            }
        }
        anchors
    }

    fn mapping(&self) -> Mapping {
        self.anchors()
            .into_iter()
            .map(|(id, anchor)| (id, customer_id(&anchor)))
            .collect()
    }

    fn component_of(&self, id: &Identifier) -> BTreeSet<Identifier> {
        self.hops_from(id).into_keys().collect()
    }
}

fn graph_of(events: &[Event]) -> IdentityGraph {
    let mut graph = IdentityGraph::new();
    for event in events {
        graph.link(event);
    }
    graph
}

/// The graph's mapping of every pool identifier it knows, by lookup.
fn mapping(graph: &IdentityGraph) -> Mapping {
    pool()
        .into_iter()
        .filter_map(|id| graph.customer_of(&id).map(|c| (id, c)))
        .collect()
}

/// The mapping `take_changes` reports, applied to `into`; checks that each
/// reported change is a change.
fn apply_changes(graph: &mut IdentityGraph, into: &mut Mapping) {
    for (id, customer) in graph.take_changes() {
        let before = into.insert(id.clone(), customer);
        assert_ne!(before, Some(customer), "{id} reported without a change");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn graph_matches_the_reference(events in events()) {
        let graph = graph_of(&events);
        let reference = Reference::new(&events);
        prop_assert_eq!(mapping(&graph), reference.mapping());
        prop_assert_eq!(graph.len(), reference.adjacency.len());
    }

    #[test]
    fn order_and_duplicates_do_not_matter(
        (events, shuffled) in events().prop_flat_map(|events| {
            let copies = proptest::collection::vec(0..events.len(), 0..20);
            (Just(events.clone()), copies.prop_flat_map(move |copies| {
                let mut all = events.clone();
                all.extend(copies.into_iter().map(|i| events[i].clone()));
                Just(all).prop_shuffle()
            }))
        })
    ) {
        let mut in_order = graph_of(&events);
        let mut any_order = graph_of(&shuffled);
        prop_assert_eq!(mapping(&in_order), mapping(&any_order));
        let (mut a, mut b) = (Mapping::new(), Mapping::new());
        apply_changes(&mut in_order, &mut a);
        apply_changes(&mut any_order, &mut b);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn partitions_agree_once_they_have_every_link(
        events in events(),
        partition_of in proptest::collection::vec(0..4usize, 40),
        partitions in 1..=4usize,
    ) {
        let expected = mapping(&graph_of(&events));
        let mut parts = vec![Vec::new(); partitions];
        for (i, event) in events.iter().enumerate() {
            parts[partition_of[i] % partitions].push(event.clone());
        }
        for (p, own) in parts.iter().enumerate() {
            // Each instance resolves its own partition first, then applies
            // the link sets of the others, in another order.
            let mut graph = graph_of(own);
            let mut reported = Mapping::new();
            apply_changes(&mut graph, &mut reported);
            for other in parts.iter().enumerate().rev().filter(|(q, _)| *q != p) {
                for event in other.1 {
                    graph.link(event);
                }
                apply_changes(&mut graph, &mut reported);
            }
            prop_assert_eq!(&mapping(&graph), &expected);
            prop_assert_eq!(&reported, &expected);
        }
    }

    #[test]
    fn changes_add_up_to_a_full_resolution(
        events in events(),
        cuts in proptest::collection::vec(any::<bool>(), 40),
    ) {
        let mut graph = IdentityGraph::new();
        let mut reported = Mapping::new();
        for (i, event) in events.iter().enumerate() {
            graph.link(event);
            let expected = Reference::new(&events[..=i]).mapping();
            // Lookups see pending links, in touched and untouched components.
            prop_assert_eq!(&mapping(&graph), &expected);
            if cuts[i] || i + 1 == events.len() {
                apply_changes(&mut graph, &mut reported);
                prop_assert_eq!(&reported, &expected);
                prop_assert_eq!(&reported, &mapping(&graph));
            }
        }
        prop_assert!(graph.take_changes().is_empty());
    }

    #[test]
    fn no_customer_holds_two_accounts(events in events()) {
        let graph = graph_of(&events);
        let mut accounts: BTreeMap<CustomerId, Vec<Identifier>> = BTreeMap::new();
        for (id, customer) in mapping(&graph) {
            if id.kind() == IdKind::Account {
                accounts.entry(customer).or_default().push(id);
            }
        }
        for (customer, held) in accounts {
            prop_assert!(held.len() == 1, "{} holds {:?}", customer, held);
            prop_assert_eq!(customer, customer_id(&held[0]));
        }
    }

    #[test]
    fn anchor_is_in_the_component(events in events()) {
        let graph = graph_of(&events);
        let reference = Reference::new(&events);
        for id in reference.adjacency.keys() {
            let anchor = graph.anchor_of(id).expect("linked identifiers are known");
            prop_assert!(reference.component_of(id).contains(&anchor));
            prop_assert_eq!(graph.customer_of(id), Some(customer_id(&anchor)));
        }
    }

    #[test]
    fn event_customer_is_that_of_its_first_identifier(events in events()) {
        let graph = graph_of(&events);
        for event in &events {
            let first = event.iter().min().expect("events are not empty");
            prop_assert_eq!(graph.customer_of_event(event), graph.customer_of(first));
        }
    }

    #[test]
    fn normal_forms_are_fixed_points(
        kind in proptest::sample::select(IdKind::ALL.to_vec()),
        raw in "[ @+()0-9a-zA-Z.:_-]{0,24}",
    ) {
        if let Ok(id) = Identifier::new(kind, &raw) {
            prop_assert_eq!(Identifier::parse(&id.as_string()), Ok(id.clone()));
            prop_assert_eq!(Identifier::new(kind, id.value()), Ok(id));
        }
    }

    #[test]
    fn phone_parsing_never_panics(raw in "\\PC{0,30}", digits in "[+0-9 ()-]{0,20}") {
        let _ = Identifier::phone(&raw);
        let _ = Identifier::phone(&digits);
    }
}
