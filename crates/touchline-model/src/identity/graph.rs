//! The identity graph: identifiers linked by the events that carry them
//! together, resolved into customers (`SPEC.md` §3).
//!
//! # Rules
//!
//! - [`IdentityGraph::link`] links every pair of the identifiers of one event
//!   (a clique, not a chain: hop distances decide the two-account case).
//! - A customer is a connected component, with one guard: a customer never
//!   holds two accounts. In a component with two or more accounts, each
//!   account anchors its own customer and every other identifier joins the
//!   account nearest to it in link hops (a multi-source breadth-first search
//!   from all accounts), ties going to the account whose normal form sorts
//!   first. Hops may pass through other accounts.
//! - In a component with at most one account, the anchor is its least
//!   identifier in anchor order ([`IdKind`] order, then value): the account
//!   if there is one, else the first email, phone, social handle, device,
//!   visitor.
//! - [`customer_id`] is a function of the anchor's normal form only.
//!
//! All of this depends only on the set of links, so on the set of distinct
//! events: order, duplicates and partitioning do not change the result
//! (`tests/identity_props.rs` checks it).
//!
//! # Incremental resolution
//!
//! `link` only records which components it touched (new identifiers, new
//! links, merges). [`IdentityGraph::take_changes`] re-resolves exactly those
//! components and returns the identifiers whose customer differs from what
//! the previous call reported, so a caller writes only changes: after a merge
//! or a split every identifier that moved is reported. Re-resolving a
//! component costs O(identifiers + links of the component), whatever the
//! size of the change: a degenerate hub (one device id shared by thousands of
//! people, a call center's own number) makes each batch that touches it pay
//! for the whole hub. That is accepted here; bounding it would mean not
//! linking such hubs, which `SPEC.md` §3 does not allow.
//!
//! The customers depend only on the set of links: instances that split the
//! events between them agree once each has linked every instance's events.
//!
//! # Memory layout
//!
//! Every identifier is a `u32` node, and the graph holds per node:
//! - its normal form in one string arena, as one kind byte
//!   ([`IdKind::rank`]) and the value's bytes; an entry ends where the next
//!   node's starts;
//! - a 16-byte record of the arena offset's low 32 bits (a tiny table holds
//!   the nodes where the offset passes a multiple of 4 GiB), its first
//!   half-edge, its union-find parent and its customer's anchor node. Four
//!   records fill a cache line, so finding a node, walking its links and its
//!   set mostly cost one memory access;
//! - a union-find rank byte; the union-find forest names components, so
//!   that a lookup can tell whether its component has unresolved links;
//! - a slot in a [`hashbrown::HashTable<u32>`] of nodes keyed by the hash of
//!   kind and value (hashes are recomputed from the arena on growth, never
//!   stored);
//! - links as `(to, next)` half-edges, two per link, in one array.
//!
//! Arrays grow by half their size, not double, to bound idle capacity; see
//! `benches/identity.rs` for the bytes per identifier measured.
//!
//! # Limits
//!
//! At most `u32::MAX - 1` identifiers and `u32::MAX - 1` half-edges (two per
//! link), far beyond what fits in memory at the sizes this serves; `link`
//! panics past them.

use std::collections::VecDeque;
use std::fmt;
use std::hash::BuildHasher;

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashMap, HashSet, HashTable};
use sha2::{Digest, Sha256};

use super::identifier::{IdKind, Identifier};

/// "No node": the end of an edge list, an unresolved anchor.
const NONE: u32 = u32::MAX;
/// The arena byte of [`IdKind::Account`].
const ACCOUNT: u8 = 0;

/// A customer's id: `c_` and the first 16 hex digits (8 bytes) of the SHA-256
/// of its anchor's normal form, e.g. `customer_id(account:AC1)` is the
/// SHA-256 of the UTF-8 bytes `account:AC1`. Depends on nothing else, so it
/// is the same on every machine, in every version, and can be recomputed
/// from `v_identities` alone.
///
/// With 64 bits, the chance that two of 10 million customers share an id
/// is about 3 in a million.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerId(u64);

impl CustomerId {
    /// The id of the customer anchored at `anchor`; same as [`customer_id`].
    pub fn of(anchor: &Identifier) -> CustomerId {
        customer_id(anchor)
    }

    /// The 8 bytes of the id as a big-endian integer.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// `c_` and 16 lower-case hex digits.
    pub fn as_string(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c_{:016x}", self.0)
    }
}

/// The customer id of the customer anchored at `anchor`: `c_` and the first
/// 16 hex digits of SHA-256(`anchor.as_string()`). See [`CustomerId`].
pub fn customer_id(anchor: &Identifier) -> CustomerId {
    digest(anchor.kind(), anchor.value().as_bytes())
}

fn digest(kind: IdKind, value: &[u8]) -> CustomerId {
    let mut hasher = Sha256::new();
    hasher.update(kind.as_str().as_bytes());
    hasher.update(b":");
    hasher.update(value);
    let hash = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    CustomerId(u64::from_be_bytes(first))
}

/// Identifiers, their links and the customers they resolve to. See the
/// module documentation for the rules and the memory layout.
#[derive(Clone, Default)]
pub struct IdentityGraph {
    store: Store,
    index: Index,
    /// Nodes whose component `link` touched since the last `take_changes`:
    /// new nodes and the root after every new link.
    dirty: Marks,
    /// Anchors of the customers that identifiers left in `take_changes`
    /// calls since the last `take_left_anchors`.
    left: Vec<Identifier>,
    scratch: Scratch,
}

/// Buffers reused by `link` and `take_changes`.
#[derive(Clone, Default)]
struct Scratch {
    nodes: Vec<u32>,
    roots: Vec<u32>,
    seen: Bits,
    members: Vec<u32>,
    old: Vec<u32>,
    accounts: Vec<u32>,
    queue: VecDeque<u32>,
}

impl IdentityGraph {
    /// An empty graph.
    pub fn new() -> IdentityGraph {
        IdentityGraph::default()
    }

    /// An empty graph with room for `identifiers` identifiers without
    /// growing its per-identifier array and index (the string arena and the
    /// links still grow).
    pub fn with_capacity(identifiers: usize) -> IdentityGraph {
        let mut graph = IdentityGraph::default();
        graph.store.nodes.reserve_exact(identifiers);
        graph.store.rank.reserve_exact(identifiers);
        graph.index.table.reserve(identifiers, |_| 0);
        graph
    }

    /// Adds the identifiers of one event and links every pair of them.
    /// Idempotent: linking the same identifiers again changes nothing and
    /// leaves nothing for [`take_changes`](IdentityGraph::take_changes). An
    /// event with one identifier adds it as its own customer; duplicates in
    /// `ids` are ignored.
    ///
    /// # Panics
    ///
    /// Past `u32::MAX - 1` identifiers or half-edges (see the module docs).
    pub fn link(&mut self, ids: &[Identifier]) {
        let mut nodes = std::mem::take(&mut self.scratch.nodes);
        nodes.clear();
        for id in ids {
            let (node, new) = self.index.intern(&mut self.store, id.kind(), id.value());
            if new {
                let len = self.store.len();
                self.dirty.grow(len);
                self.scratch.seen.grow(len);
                self.dirty.mark(node);
            }
            nodes.push(node);
        }
        for (i, &a) in nodes.iter().enumerate() {
            for &b in &nodes[i + 1..] {
                if a == b || self.store.has_edge(a, b) {
                    continue;
                }
                self.store.add_edge(a, b);
                let root = self.store.union(a, b);
                self.dirty.mark(root);
            }
        }
        self.scratch.nodes = nodes;
    }

    /// Re-resolves the components touched by [`link`](IdentityGraph::link)
    /// since the last call and returns every identifier whose customer is
    /// new or differs from what the previous call reported for it, with its
    /// customer now, in no particular order. Applied in order, the returned
    /// changes always add up to the full mapping of
    /// [`customer_of`](IdentityGraph::customer_of).
    pub fn take_changes(&mut self) -> Vec<(Identifier, CustomerId)> {
        let mut changes = Vec::new();
        let mut roots = std::mem::take(&mut self.scratch.roots);
        roots.clear();
        let pending = self.dirty.list.len();
        for &node in &self.dirty.list {
            roots.push(self.store.find(node));
        }
        self.dirty.clear();
        roots.sort_unstable();
        roots.dedup();
        let mut largest = 0;
        for &root in &roots {
            self.resolve(root, &mut changes);
            largest = largest.max(self.scratch.members.len());
        }
        // Give back what one large batch (a bulk load) made the buffers hold.
        let distinct = roots.len();
        trim(&mut roots, distinct);
        trim(&mut self.dirty.list, pending);
        let s = &mut self.scratch;
        trim(&mut s.members, largest);
        trim(&mut s.old, largest);
        if s.queue.capacity() > TRIM_ABOVE && s.queue.capacity() / 4 > largest {
            s.queue.shrink_to(largest);
        }
        s.roots = roots;
        changes
    }

    /// The anchors of the customers that identifiers reported by
    /// [`take_changes`](IdentityGraph::take_changes) belonged to before
    /// (merged away, split, or re-anchored), each once, since the last call.
    /// With the changes' new customers, these are every customer whose set
    /// of identifiers changed.
    pub fn take_left_anchors(&mut self) -> Vec<Identifier> {
        let mut left = std::mem::take(&mut self.left);
        left.sort_unstable();
        left.dedup();
        left
    }

    /// Resolves the component of `root` in place, noting the changes.
    fn resolve(&mut self, root: u32, changes: &mut Vec<(Identifier, CustomerId)>) {
        let IdentityGraph {
            store,
            scratch,
            left,
            ..
        } = self;
        let Scratch {
            seen,
            members,
            old,
            accounts,
            queue,
            ..
        } = scratch;
        store.component(root, seen, members);
        old.clear();
        for &m in members.iter() {
            let node = &mut store.nodes[m as usize];
            old.push(node.anchor);
            node.anchor = NONE;
        }
        assign(&mut InPlace(store), members, accounts, queue);
        let mut last = (NONE, CustomerId(0));
        for (&m, &before) in members.iter().zip(old.iter()) {
            seen.clear(m);
            let now = store.nodes[m as usize].anchor;
            if now != before {
                if before != NONE {
                    left.push(store.identifier(before));
                }
                if now != last.0 {
                    last = (now, store.customer(now));
                }
                changes.push((store.identifier(m), last.1));
            }
        }
    }

    /// The customer of `id` in the current graph, links not yet taken by
    /// [`take_changes`](IdentityGraph::take_changes) included; `None` if
    /// `id` was never linked. O(1) in a resolved component; a component with
    /// pending links is resolved on the fly, O(component), without changing
    /// what `take_changes` will report.
    pub fn customer_of(&self, id: &Identifier) -> Option<CustomerId> {
        let node = self.index.get(&self.store, id.kind(), id.value())?;
        Some(self.store.customer(self.anchor_node(node)))
    }

    /// The anchor identifier of the customer of `id` (the identifier
    /// [`customer_id`] is computed from); `None` if `id` was never linked.
    pub fn anchor_of(&self, id: &Identifier) -> Option<Identifier> {
        let node = self.index.get(&self.store, id.kind(), id.value())?;
        Some(self.store.identifier(self.anchor_node(node)))
    }

    /// The customer of an event: that of its first identifier in anchor order
    /// (kind order, then value), as for contacts in `SPEC.md` §4. `None` when
    /// `ids` is empty or that identifier was never linked.
    pub fn customer_of_event(&self, ids: &[Identifier]) -> Option<CustomerId> {
        ids.iter().min().and_then(|id| self.customer_of(id))
    }

    fn anchor_node(&self, node: u32) -> u32 {
        let root = self.store.find_quiet(node);
        if !self.dirty.bits.get(root) {
            return self.store.nodes[node as usize].anchor;
        }
        let mut seen = HashSet::new();
        let mut members = Vec::new();
        self.store.component(node, &mut seen, &mut members);
        let mut aside = Aside {
            store: &self.store,
            owners: HashMap::with_capacity(members.len()),
        };
        assign(&mut aside, &members, &mut Vec::new(), &mut VecDeque::new());
        aside.owner(node)
    }

    /// Number of distinct identifiers in the graph.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether the graph has no identifier.
    pub fn is_empty(&self) -> bool {
        self.store.len() == 0
    }

    /// Number of distinct links (pairs of identifiers seen on one event).
    pub fn links(&self) -> usize {
        self.store.edges.len() / 2
    }

    /// Heap bytes the graph holds: the capacities of its arena, arrays,
    /// index and reusable buffers, not just what is in use. Allocator
    /// overhead per allocation (a few dozen allocations) is not counted.
    pub fn heap_bytes(&self) -> usize {
        let s = &self.scratch;
        self.store.heap_bytes()
            + self.index.table.allocation_size()
            + self.dirty.heap_bytes()
            + capacity_bytes(&s.nodes)
            + capacity_bytes(&s.roots)
            + s.seen.heap_bytes()
            + capacity_bytes(&s.members)
            + capacity_bytes(&s.old)
            + capacity_bytes(&s.accounts)
            + s.queue.capacity() * size_of::<u32>()
    }
}

impl fmt::Debug for IdentityGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityGraph")
            .field("identifiers", &self.len())
            .field("links", &self.links())
            .field("pending", &self.dirty.list.len())
            .field("heap_bytes", &self.heap_bytes())
            .finish()
    }
}

/// Sets the anchor of every member of one component, which must read
/// `NONE` for every member on entry (see the module docs for the rules).
fn assign<O: Owners>(
    owners: &mut O,
    members: &[u32],
    accounts: &mut Vec<u32>,
    queue: &mut VecDeque<u32>,
) {
    accounts.clear();
    let mut least = NONE;
    {
        let store = owners.store();
        for &m in members {
            let entry = store.entry(m);
            if entry.first() == Some(&ACCOUNT) {
                accounts.push(m);
            }
            if least == NONE || entry < store.entry(least) {
                least = m;
            }
        }
        // Sources in normal-form order: breadth-first search then discovers
        // each layer in order of owner, so the first account to reach an
        // identifier is the least of its nearest accounts.
        accounts.sort_unstable_by(|&a, &b| store.entry(a).cmp(store.entry(b)));
    }
    if accounts.len() <= 1 {
        // The single account, if any, is the least identifier: accounts
        // come first in anchor order.
        for &m in members {
            owners.set_owner(m, least);
        }
        return;
    }
    queue.clear();
    for &a in accounts.iter() {
        owners.set_owner(a, a);
        queue.push_back(a);
    }
    while let Some(u) = queue.pop_front() {
        let owner = owners.owner(u);
        let mut next = owners.store().nodes[u as usize].head;
        while next != NONE {
            let edge = owners.store().edges[next as usize];
            if owners.owner(edge.to) == NONE {
                owners.set_owner(edge.to, owner);
                queue.push_back(edge.to);
            }
            next = edge.next;
        }
    }
}

/// Where [`assign`] writes anchors: in the nodes when taking changes, in a
/// map when resolving one lookup through `&self`.
trait Owners {
    fn store(&self) -> &Store;
    fn owner(&self, node: u32) -> u32;
    fn set_owner(&mut self, node: u32, owner: u32);
}

struct InPlace<'a>(&'a mut Store);

impl Owners for InPlace<'_> {
    fn store(&self) -> &Store {
        self.0
    }

    fn owner(&self, node: u32) -> u32 {
        self.0.nodes[node as usize].anchor
    }

    fn set_owner(&mut self, node: u32, owner: u32) {
        self.0.nodes[node as usize].anchor = owner;
    }
}

struct Aside<'a> {
    store: &'a Store,
    owners: HashMap<u32, u32>,
}

impl Owners for Aside<'_> {
    fn store(&self) -> &Store {
        self.store
    }

    fn owner(&self, node: u32) -> u32 {
        self.owners.get(&node).copied().unwrap_or(NONE)
    }

    fn set_owner(&mut self, node: u32, owner: u32) {
        self.owners.insert(node, owner);
    }
}

/// A set of nodes, for breadth-first search.
trait Seen {
    /// Adds `node`; false if it was there.
    fn insert_node(&mut self, node: u32) -> bool;
}

impl Seen for Bits {
    fn insert_node(&mut self, node: u32) -> bool {
        if self.get(node) {
            false
        } else {
            self.set(node);
            true
        }
    }
}

impl Seen for HashSet<u32> {
    fn insert_node(&mut self, node: u32) -> bool {
        self.insert(node)
    }
}

/// What the graph knows of one identifier, 16 bytes: four to a cache line,
/// so that finding a node, walking its links and its union-find parent
/// mostly cost one memory access.
#[derive(Clone, Copy)]
struct Node {
    /// Low 32 bits of the arena offset of the node's entry (see
    /// [`Store::start`]).
    start: u32,
    /// First half-edge out of the node, `NONE` if none.
    head: u32,
    /// Union-find parent; the node itself at a root.
    parent: u32,
    /// Anchor node of its customer as last resolved; `NONE` before.
    anchor: u32,
}

/// Nodes, their normal forms and links, and the union-find forest.
#[derive(Clone, Default)]
struct Store {
    /// Per node: kind byte, then the value's UTF-8 bytes; node `n`'s entry
    /// ends where node `n + 1`'s starts.
    bytes: Vec<u8>,
    /// `wraps[k]` is the first node whose entry starts at or past
    /// `(k + 1) << 32`: the high bits of the offsets, one entry per 4 GiB.
    wraps: Vec<u32>,
    nodes: Vec<Node>,
    /// Union-find rank per node (union by rank keeps trees log-deep).
    rank: Vec<u8>,
    edges: Vec<HalfEdge>,
}

#[derive(Clone, Copy)]
struct HalfEdge {
    to: u32,
    next: u32,
}

impl Store {
    fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Arena offset of node `index`'s entry.
    fn start(&self, index: usize) -> usize {
        // Offsets index this process's memory, so they fit in usize.
        full_offset(&self.wraps, index, self.nodes[index].start) as usize
    }

    /// The kind byte and value bytes of `node`.
    fn entry(&self, node: u32) -> &[u8] {
        let i = node as usize;
        let end = if i + 1 < self.nodes.len() {
            self.start(i + 1)
        } else {
            self.bytes.len()
        };
        &self.bytes[self.start(i)..end]
    }

    /// Adds a node for a normal form not in the graph yet.
    fn add(&mut self, kind: u8, value: &[u8]) -> u32 {
        let node = match u32::try_from(self.nodes.len()) {
            Ok(node) if node != NONE => node,
            _ => panic!("identity graph is full: {} identifiers", self.nodes.len()),
        };
        let offset = self.bytes.len() as u64;
        note_offset(&mut self.wraps, node, offset);
        let needed = 1 + value.len();
        if self.bytes.capacity() - self.bytes.len() < needed {
            let grow = needed.max(self.bytes.capacity() / 2).max(4096);
            self.bytes.reserve_exact(grow);
        }
        self.bytes.push(kind);
        self.bytes.extend_from_slice(value);
        push(
            &mut self.nodes,
            Node {
                start: offset as u32,
                head: NONE,
                parent: node,
                anchor: NONE,
            },
        );
        push(&mut self.rank, 0);
        node
    }

    fn identifier(&self, node: u32) -> Identifier {
        let (kind, value) = split(self.entry(node));
        let kind = IdKind::from_rank(kind).unwrap_or(IdKind::Visitor);
        Identifier::from_normal_parts(kind, String::from_utf8_lossy(value).into_owned())
    }

    fn customer(&self, node: u32) -> CustomerId {
        let (kind, value) = split(self.entry(node));
        digest(IdKind::from_rank(kind).unwrap_or(IdKind::Visitor), value)
    }

    /// Whether `a` and `b` are linked: walks both lists in step, so the cost
    /// is twice the smaller degree (a hub linked to a leaf costs little).
    fn has_edge(&self, a: u32, b: u32) -> bool {
        let (mut x, mut y) = (self.nodes[a as usize].head, self.nodes[b as usize].head);
        while x != NONE && y != NONE {
            let (ex, ey) = (self.edges[x as usize], self.edges[y as usize]);
            if ex.to == b || ey.to == a {
                return true;
            }
            (x, y) = (ex.next, ey.next);
        }
        false
    }

    fn add_edge(&mut self, a: u32, b: u32) {
        self.add_half(a, b);
        self.add_half(b, a);
    }

    fn add_half(&mut self, from: u32, to: u32) {
        let index = match u32::try_from(self.edges.len()) {
            Ok(index) if index != NONE => index,
            _ => panic!("identity graph is full: {} half-edges", self.edges.len()),
        };
        let head = &mut self.nodes[from as usize].head;
        push(&mut self.edges, HalfEdge { to, next: *head });
        *head = index;
    }

    fn neighbours(&self, node: u32) -> Neighbours<'_> {
        Neighbours {
            edges: &self.edges,
            next: self.nodes[node as usize].head,
        }
    }

    /// All nodes of `start`'s component into `members` (breadth-first
    /// order), each added to `seen`.
    fn component<S: Seen>(&self, start: u32, seen: &mut S, members: &mut Vec<u32>) {
        members.clear();
        seen.insert_node(start);
        members.push(start);
        let mut i = 0;
        while let Some(&u) = members.get(i) {
            i += 1;
            for v in self.neighbours(u) {
                if seen.insert_node(v) {
                    members.push(v);
                }
            }
        }
    }

    /// Union-find root of `node`, halving the path on the way.
    fn find(&mut self, mut node: u32) -> u32 {
        loop {
            let parent = self.nodes[node as usize].parent;
            if parent == node {
                return node;
            }
            let grandparent = self.nodes[parent as usize].parent;
            self.nodes[node as usize].parent = grandparent;
            node = grandparent;
        }
    }

    /// `find` without path compression, for `&self` lookups: union by rank
    /// bounds the walk to log2(nodes) steps.
    fn find_quiet(&self, mut node: u32) -> u32 {
        loop {
            let parent = self.nodes[node as usize].parent;
            if parent == node {
                return node;
            }
            node = parent;
        }
    }

    /// Joins the sets of `a` and `b`; returns the root of the union.
    fn union(&mut self, a: u32, b: u32) -> u32 {
        let (a, b) = (self.find(a), self.find(b));
        if a == b {
            return a;
        }
        let (rank_a, rank_b) = (self.rank[a as usize], self.rank[b as usize]);
        let (root, child) = if rank_a >= rank_b { (a, b) } else { (b, a) };
        self.nodes[child as usize].parent = root;
        if rank_a == rank_b {
            self.rank[root as usize] += 1;
        }
        root
    }

    fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + capacity_bytes(&self.wraps)
            + capacity_bytes(&self.nodes)
            + capacity_bytes(&self.rank)
            + capacity_bytes(&self.edges)
    }
}

/// The full offset of node `index` whose low 32 bits are `low`.
fn full_offset(wraps: &[u32], index: usize, low: u32) -> u64 {
    let high = wraps.partition_point(|&w| w as usize <= index) as u64;
    high << 32 | u64::from(low)
}

/// Notes that node `node` starts at `offset` (offsets only grow).
fn note_offset(wraps: &mut Vec<u32>, node: u32, offset: u64) {
    while (wraps.len() as u64) < offset >> 32 {
        wraps.push(node);
    }
}

/// An arena entry as kind byte and value bytes.
fn split(entry: &[u8]) -> (u8, &[u8]) {
    match entry.split_first() {
        Some((&kind, value)) => (kind, value),
        None => (u8::MAX, entry),
    }
}

struct Neighbours<'a> {
    edges: &'a [HalfEdge],
    next: u32,
}

impl Iterator for Neighbours<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let edge = self.edges.get(self.next as usize)?;
        self.next = edge.next;
        Some(edge.to)
    }
}

/// Identifier to node: a table of node numbers keyed by the hash of kind
/// and value, compared against the arena. Hashes are not stored: growing
/// the table rehashes from the arena.
#[derive(Clone, Default)]
struct Index {
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl Index {
    fn hash(&self, kind: u8, value: &[u8]) -> u64 {
        self.hasher.hash_one((kind, value))
    }

    fn get(&self, store: &Store, kind: IdKind, value: &str) -> Option<u32> {
        let (kind, value) = (kind.rank(), value.as_bytes());
        self.table
            .find(self.hash(kind, value), |&node| {
                split(store.entry(node)) == (kind, value)
            })
            .copied()
    }

    /// The node of `(kind, value)`, added to `store` if new; true when added.
    fn intern(&mut self, store: &mut Store, kind: IdKind, value: &str) -> (u32, bool) {
        let (kind, value) = (kind.rank(), value.as_bytes());
        let hash = self.hash(kind, value);
        let Index { table, hasher } = self;
        let found = table.entry(
            hash,
            |&node| split(store.entry(node)) == (kind, value),
            |&node| {
                let (k, v) = split(store.entry(node));
                hasher.hash_one((k, v))
            },
        );
        match found {
            Entry::Occupied(found) => (*found.get(), false),
            Entry::Vacant(vacant) => {
                let node = store.add(kind, value);
                vacant.insert(node);
                (node, true)
            }
        }
    }
}

/// A bit per node.
#[derive(Clone, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn grow(&mut self, nodes: usize) {
        let words = nodes.div_ceil(64);
        while self.0.len() < words {
            push(&mut self.0, 0);
        }
    }

    fn get(&self, node: u32) -> bool {
        self.0[node as usize / 64] & (1 << (node % 64)) != 0
    }

    fn set(&mut self, node: u32) {
        self.0[node as usize / 64] |= 1 << (node % 64);
    }

    fn clear(&mut self, node: u32) {
        self.0[node as usize / 64] &= !(1 << (node % 64));
    }

    fn heap_bytes(&self) -> usize {
        capacity_bytes(&self.0)
    }
}

/// A set of nodes with its members listed, cleared in O(members).
#[derive(Clone, Default)]
struct Marks {
    bits: Bits,
    list: Vec<u32>,
}

impl Marks {
    fn grow(&mut self, nodes: usize) {
        self.bits.grow(nodes);
    }

    fn mark(&mut self, node: u32) {
        if !self.bits.get(node) {
            self.bits.set(node);
            push(&mut self.list, node);
        }
    }

    fn clear(&mut self) {
        for &node in &self.list {
            self.bits.clear(node);
        }
        self.list.clear();
    }

    fn heap_bytes(&self) -> usize {
        self.bits.heap_bytes() + capacity_bytes(&self.list)
    }
}

/// Pushes, growing by half the capacity (not doubling) when full: amortised
/// O(1) with at most a third of the memory idle.
fn push<T>(vec: &mut Vec<T>, value: T) {
    if vec.len() == vec.capacity() {
        vec.reserve_exact((vec.capacity() / 2).max(16));
    }
    vec.push(value);
}

/// Buffers above this many elements are shrunk when mostly idle.
const TRIM_ABOVE: usize = 4096;

/// Shrinks a reusable buffer whose capacity is over four times what the
/// last use needed, so that one bulk load does not pin memory.
fn trim<T>(vec: &mut Vec<T>, used: usize) {
    if vec.capacity() > TRIM_ABOVE && vec.capacity() / 4 > used {
        vec.shrink_to(used.max(TRIM_ABOVE));
    }
}

fn capacity_bytes<T>(vec: &Vec<T>) -> usize {
    vec.capacity() * size_of::<T>()
}

#[cfg(test)]
mod tests;
