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
//! for the whole hub. That is accepted: links are never removed, so the
//! caller may instead choose not to link identifiers seen on too many events.
//!
//! # Memory layout
//!
//! Every identifier is a `u32` node:
//! - its normal form, as one kind byte ([`IdKind::rank`]) and the value's
//!   bytes, lies in one string arena; node `n` spans `start(n)..start(n+1)`,
//!   with `u32` low offsets plus a tiny table of the nodes where the offset
//!   passes a multiple of 4 GiB;
//! - a [`hashbrown::HashTable<u32>`] of nodes, keyed by the hash of the kind
//!   and value, finds a node from an identifier (the hash is recomputed from
//!   the arena on growth, never stored);
//! - links are half-edge lists: `head[node]` and `(to, next)` pairs;
//! - a union-find forest (`parent`, `rank`) names components, so that a
//!   lookup can tell whether its component has unresolved links;
//! - `anchor[node]` is the anchor node of its customer as last reported.
//!
//! Arrays grow by half their size, not double, to bound slack; about 70
//! bytes per identifier at 10 million (see `benches/identity.rs`).
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
/// 64 bits make a collision between two of 10 million customers about a
/// one-in-300,000 event.
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
    names: Interner,
    adjacency: Adjacency,
    sets: DisjointSets,
    /// Anchor node of each node's customer as last reported; `NONE` before.
    anchor: Vec<u32>,
    /// Nodes whose component `link` touched since the last `take_changes`:
    /// new nodes and the root after every new link.
    dirty: Marks,
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
    /// growing its per-identifier arrays and index (the arena and the links
    /// still grow).
    pub fn with_capacity(identifiers: usize) -> IdentityGraph {
        let mut graph = IdentityGraph::default();
        graph.names.starts.low.reserve_exact(identifiers + 1);
        graph.names.index.reserve(identifiers, |_| 0);
        graph.adjacency.head.reserve_exact(identifiers);
        graph.sets.parent.reserve_exact(identifiers);
        graph.sets.rank.reserve_exact(identifiers);
        graph.anchor.reserve_exact(identifiers);
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
            let (node, new) = self.names.intern(id.kind(), id.value());
            if new {
                self.add_node(node);
            }
            nodes.push(node);
        }
        for (i, &a) in nodes.iter().enumerate() {
            for &b in &nodes[i + 1..] {
                if a == b || self.adjacency.has_edge(a, b) {
                    continue;
                }
                self.adjacency.add_edge(a, b);
                let root = self.sets.union(a, b);
                self.dirty.mark(root);
            }
        }
        self.scratch.nodes = nodes;
    }

    fn add_node(&mut self, node: u32) {
        self.adjacency.add_node();
        self.sets.add(node);
        push(&mut self.anchor, NONE);
        let len = self.anchor.len();
        self.dirty.grow(len);
        self.scratch.seen.grow(len);
        self.dirty.mark(node);
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
        for i in 0..self.dirty.list.len() {
            let node = self.dirty.list[i];
            roots.push(self.sets.find(node));
        }
        self.dirty.clear();
        roots.sort_unstable();
        roots.dedup();
        for &root in &roots {
            self.resolve(root, &mut changes);
        }
        self.scratch.roots = roots;
        changes
    }

    /// Resolves the component of `root` into `anchor`, noting the changes.
    fn resolve(&mut self, root: u32, changes: &mut Vec<(Identifier, CustomerId)>) {
        let IdentityGraph {
            names,
            adjacency,
            anchor,
            scratch,
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
        adjacency.component(root, seen, members);
        old.clear();
        for &m in members.iter() {
            old.push(anchor[m as usize]);
            anchor[m as usize] = NONE;
        }
        assign(
            names,
            adjacency,
            members,
            anchor.as_mut_slice(),
            accounts,
            queue,
        );
        let mut last = (NONE, CustomerId(0));
        for (&m, &before) in members.iter().zip(old.iter()) {
            seen.clear(m);
            let now = anchor[m as usize];
            if now != before {
                if now != last.0 {
                    last = (now, names.customer(now));
                }
                changes.push((names.identifier(m), last.1));
            }
        }
    }

    /// The customer of `id` in the current graph, links not yet taken by
    /// [`take_changes`](IdentityGraph::take_changes) included; `None` if
    /// `id` was never linked. O(1) in a resolved component; a component with
    /// pending links is resolved on the fly, O(component), without changing
    /// what `take_changes` will report.
    pub fn customer_of(&self, id: &Identifier) -> Option<CustomerId> {
        let node = self.names.get(id.kind(), id.value())?;
        Some(self.names.customer(self.anchor_node(node)))
    }

    /// The anchor identifier of the customer of `id` (the identifier
    /// [`customer_id`] is computed from); `None` if `id` was never linked.
    pub fn anchor_of(&self, id: &Identifier) -> Option<Identifier> {
        let node = self.names.get(id.kind(), id.value())?;
        Some(self.names.identifier(self.anchor_node(node)))
    }

    /// The customer of an event: that of its first identifier in anchor order
    /// (kind order, then value), as for contacts in `SPEC.md` §4. `None` when
    /// `ids` is empty or that identifier was never linked.
    pub fn customer_of_event(&self, ids: &[Identifier]) -> Option<CustomerId> {
        ids.iter().min().and_then(|id| self.customer_of(id))
    }

    fn anchor_node(&self, node: u32) -> u32 {
        let root = self.sets.find_quiet(node);
        if !self.dirty.bits.get(root) {
            return self.anchor[node as usize];
        }
        let mut seen = HashSet::new();
        let mut members = Vec::new();
        self.adjacency.component(node, &mut seen, &mut members);
        let mut owners = HashMap::with_capacity(members.len());
        assign(
            &self.names,
            &self.adjacency,
            &members,
            &mut owners,
            &mut Vec::new(),
            &mut VecDeque::new(),
        );
        owners.owner(node)
    }

    /// Number of distinct identifiers in the graph.
    pub fn len(&self) -> usize {
        self.anchor.len()
    }

    /// Whether the graph has no identifier.
    pub fn is_empty(&self) -> bool {
        self.anchor.is_empty()
    }

    /// Number of distinct links (pairs of identifiers seen on one event).
    pub fn links(&self) -> usize {
        self.adjacency.edges.len() / 2
    }

    /// Heap bytes the graph holds: the capacities of its arena, arrays,
    /// index and reusable buffers, not just what is in use. Allocator
    /// overhead per allocation (a few dozen allocations) is not counted.
    pub fn heap_bytes(&self) -> usize {
        let s = &self.scratch;
        self.names.heap_bytes()
            + self.adjacency.heap_bytes()
            + self.sets.heap_bytes()
            + capacity_bytes(&self.anchor)
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

/// Sets the anchor of every member of one component in `owners`, which must
/// read `NONE` for every member on entry (see the module docs for the rules).
fn assign<O: Owners + ?Sized>(
    names: &Interner,
    adjacency: &Adjacency,
    members: &[u32],
    owners: &mut O,
    accounts: &mut Vec<u32>,
    queue: &mut VecDeque<u32>,
) {
    accounts.clear();
    let mut least = NONE;
    for &m in members {
        let entry = names.entry(m);
        if entry.first() == Some(&ACCOUNT) {
            accounts.push(m);
        }
        if least == NONE || entry < names.entry(least) {
            least = m;
        }
    }
    if accounts.len() <= 1 {
        // The single account, if any, is the least identifier: accounts
        // come first in anchor order.
        for &m in members {
            owners.set_owner(m, least);
        }
        return;
    }
    // Sources in normal-form order: breadth-first search then discovers
    // each layer in order of owner, so the first account to reach an
    // identifier is the least of its nearest accounts.
    accounts.sort_unstable_by(|&a, &b| names.entry(a).cmp(names.entry(b)));
    queue.clear();
    for &a in accounts.iter() {
        owners.set_owner(a, a);
        queue.push_back(a);
    }
    while let Some(u) = queue.pop_front() {
        let owner = owners.owner(u);
        for v in adjacency.neighbours(u) {
            if owners.owner(v) == NONE {
                owners.set_owner(v, owner);
                queue.push_back(v);
            }
        }
    }
}

/// Where [`assign`] writes anchors: the graph's `anchor` array when taking
/// changes, a map when resolving one lookup without `&mut`.
trait Owners {
    fn owner(&self, node: u32) -> u32;
    fn set_owner(&mut self, node: u32, owner: u32);
}

impl Owners for [u32] {
    fn owner(&self, node: u32) -> u32 {
        self[node as usize]
    }

    fn set_owner(&mut self, node: u32, owner: u32) {
        self[node as usize] = owner;
    }
}

impl Owners for HashMap<u32, u32> {
    fn owner(&self, node: u32) -> u32 {
        self.get(&node).copied().unwrap_or(NONE)
    }

    fn set_owner(&mut self, node: u32, owner: u32) {
        self.insert(node, owner);
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

/// The string arena and the index from identifier to node.
#[derive(Clone, Default)]
struct Interner {
    /// Per node: kind byte, then the value's UTF-8 bytes.
    bytes: Vec<u8>,
    /// Start of node `n`'s entry is `starts.get(n)`; one more than nodes.
    starts: Offsets,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl Interner {
    /// The kind byte and value bytes of `node`.
    fn entry(&self, node: u32) -> &[u8] {
        let i = node as usize;
        let (start, end) = (self.starts.get(i), self.starts.get(i + 1));
        // Offsets index memory of this process, so they fit in usize.
        &self.bytes[start as usize..end as usize]
    }

    fn hash(hasher: &DefaultHashBuilder, kind: u8, value: &[u8]) -> u64 {
        hasher.hash_one((kind, value))
    }

    fn get(&self, kind: IdKind, value: &str) -> Option<u32> {
        let (kind, value) = (kind.rank(), value.as_bytes());
        let hash = Interner::hash(&self.hasher, kind, value);
        self.index
            .find(hash, |&node| split(self.entry(node)) == (kind, value))
            .copied()
    }

    /// The node of `(kind, value)`, added if new; true when added.
    fn intern(&mut self, kind: IdKind, value: &str) -> (u32, bool) {
        let (kind, value) = (kind.rank(), value.as_bytes());
        let hash = Interner::hash(&self.hasher, kind, value);
        let Interner {
            bytes,
            starts,
            index,
            hasher,
        } = self;
        let entry_of = |node: u32| {
            let i = node as usize;
            &bytes[starts.get(i) as usize..starts.get(i + 1) as usize]
        };
        let entry = index.entry(
            hash,
            |&node| split(entry_of(node)) == (kind, value),
            |&node| {
                let (k, v) = split(entry_of(node));
                Interner::hash(hasher, k, v)
            },
        );
        match entry {
            Entry::Occupied(found) => (*found.get(), false),
            Entry::Vacant(vacant) => {
                let node = starts.len().saturating_sub(1);
                let node = match u32::try_from(node) {
                    Ok(node) if node != NONE => node,
                    _ => panic!("identity graph is full: {node} identifiers"),
                };
                let needed = 1 + value.len();
                if bytes.capacity() - bytes.len() < needed {
                    bytes.reserve_exact(needed.max(bytes.capacity() / 2).max(4096));
                }
                bytes.push(kind);
                bytes.extend_from_slice(value);
                starts.push(bytes.len() as u64);
                vacant.insert(node);
                (node, true)
            }
        }
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

    fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.starts.heap_bytes() + self.index.allocation_size()
    }
}

/// An arena entry as kind byte and value bytes.
fn split(entry: &[u8]) -> (u8, &[u8]) {
    match entry.split_first() {
        Some((&kind, value)) => (kind, value),
        None => (u8::MAX, entry),
    }
}

/// Monotone `u64` offsets stored in 4 bytes each: the low 32 bits, and the
/// indices at which the high bits step up (at most one per 4 GiB of arena).
#[derive(Clone)]
struct Offsets {
    low: Vec<u32>,
    /// `wraps[k]` is the first index whose offset is at least `(k+1) << 32`.
    wraps: Vec<u32>,
}

impl Default for Offsets {
    fn default() -> Offsets {
        Offsets {
            low: vec![0],
            wraps: Vec::new(),
        }
    }
}

impl Offsets {
    fn len(&self) -> usize {
        self.low.len()
    }

    /// Appends `offset`, which must not be less than the last one.
    fn push(&mut self, offset: u64) {
        let index = self.low.len() as u32;
        while (self.wraps.len() as u64) < offset >> 32 {
            self.wraps.push(index);
        }
        push(&mut self.low, offset as u32);
    }

    fn get(&self, index: usize) -> u64 {
        let high = self.wraps.partition_point(|&w| w as usize <= index) as u64;
        high << 32 | u64::from(self.low[index])
    }

    fn heap_bytes(&self) -> usize {
        capacity_bytes(&self.low) + capacity_bytes(&self.wraps)
    }
}

/// Undirected links as singly linked half-edge lists.
#[derive(Clone, Default)]
struct Adjacency {
    /// First half-edge out of each node, `NONE` if none.
    head: Vec<u32>,
    edges: Vec<HalfEdge>,
}

#[derive(Clone, Copy)]
struct HalfEdge {
    to: u32,
    next: u32,
}

impl Adjacency {
    fn add_node(&mut self) {
        push(&mut self.head, NONE);
    }

    /// Whether `a` and `b` are linked: walks both lists in step, so the cost
    /// is twice the smaller degree (a hub linked to a leaf costs little).
    fn has_edge(&self, a: u32, b: u32) -> bool {
        let (mut x, mut y) = (self.head[a as usize], self.head[b as usize]);
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
        let head = &mut self.head[from as usize];
        push(&mut self.edges, HalfEdge { to, next: *head });
        *head = index;
    }

    fn neighbours(&self, node: u32) -> Neighbours<'_> {
        Neighbours {
            edges: &self.edges,
            next: self.head[node as usize],
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

    fn heap_bytes(&self) -> usize {
        capacity_bytes(&self.head) + capacity_bytes(&self.edges)
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

/// Union-find over nodes, union by rank, path halving.
#[derive(Clone, Default)]
struct DisjointSets {
    parent: Vec<u32>,
    rank: Vec<u8>,
}

impl DisjointSets {
    fn add(&mut self, node: u32) {
        push(&mut self.parent, node);
        push(&mut self.rank, 0);
    }

    fn find(&mut self, mut node: u32) -> u32 {
        loop {
            let parent = self.parent[node as usize];
            if parent == node {
                return node;
            }
            let grandparent = self.parent[parent as usize];
            self.parent[node as usize] = grandparent;
            node = grandparent;
        }
    }

    /// `find` without path compression, for `&self` lookups: union by rank
    /// bounds the walk to log2(nodes) steps.
    fn find_quiet(&self, mut node: u32) -> u32 {
        loop {
            let parent = self.parent[node as usize];
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
        self.parent[child as usize] = root;
        if rank_a == rank_b {
            self.rank[root as usize] += 1;
        }
        root
    }

    fn heap_bytes(&self) -> usize {
        capacity_bytes(&self.parent) + capacity_bytes(&self.rank)
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

fn capacity_bytes<T>(vec: &Vec<T>) -> usize {
    vec.capacity() * size_of::<T>()
}

#[cfg(test)]
mod tests;
