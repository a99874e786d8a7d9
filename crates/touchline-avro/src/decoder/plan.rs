//! The plan of one writer schema: how its bytes are read, and what the
//! channel's reader schema makes of each value, worked out once per schema id
//! so that a message is read in one pass with no schema lookups.
//!
//! The resolution follows the Avro specification ("Schema Resolution") as
//! apache-avro 0.22 implements it, which Touchline used before this decoder
//! and whose outcomes (a record, or the dead-letter reason) stay the contract:
//!
//! - records match fields by name (the writer's fields already renamed to the
//!   reader's through its aliases, see `aliases`); writer-only fields are read
//!   and dropped; reader-only fields take the reader's default, converted and
//!   encoded here once; record and enum names are not compared;
//! - int, long, float and double promote as the specification says (and, as
//!   apache-avro does, a long narrows to an int and a double to a float);
//!   string and bytes convert both ways; logical types resolve as apache-avro
//!   resolves their values;
//! - enums resolve by symbol, an unknown symbol to the reader enum's default
//!   when it has one;
//! - a writer union reads its branch, then resolves that branch; a reader union
//!   takes the branch apache-avro's `UnionSchema::find_schema_with_known_schemata`
//!   picks: the branch of the value's own kind, the first named branch the
//!   value resolves into, else the first branch it resolves into. Where that
//!   depends on the data (a symbol, a string, a nested value) the plan keeps
//!   the candidates and tries them on the bytes ([`Select`]).
//!
//! Whatever cannot resolve becomes a [`Failure`] node, reached only when a
//! value needs it, exactly as apache-avro fails only on the values it meets.
//! Two resolutions apache-avro allows and the specification does not, a map
//! read as a record and an array of ints read as bytes, are refused as
//! incompatible.

use std::collections::HashMap;

use apache_avro::schema::{
    DecimalSchema, EnumSchema, InnerDecimalSchema, NamesRef, RecordField, RecordSchema,
    ResolvedSchema, SchemaKind, UnionSchema, UuidSchema,
};
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;

use super::cursor::{Error, Limits, Reason};

/// Index of a [`Node`] in [`Plan::nodes`].
pub(crate) type NodeId = u32;
/// Index of a [`Skip`] in [`Plan::skips`].
pub(crate) type SkipId = u32;

/// A namespace that encloses a name, as apache-avro passes it down.
type Namespace<'s> = Option<&'s str>;

/// How a leaf value is written, and what reading it checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leaf {
    Null,
    Boolean,
    /// `int`, `date`, `time-millis`.
    Int,
    /// `long` and the long-based time logical types.
    Long,
    Float,
    Double,
    /// `bytes`, and a `decimal` on bytes.
    Bytes,
    String,
    /// A `uuid` on a string: must parse.
    UuidString,
    /// A `uuid` on bytes: must be 16 bytes.
    UuidBytes,
    /// A `fixed` of this size, and a `decimal` on a fixed.
    Fixed(usize),
    /// A `uuid` on a fixed of this size: must be 16.
    UuidFixed(usize),
    /// A `duration` on a fixed of this size: must be 12.
    Duration(usize),
    /// A `big-decimal` on bytes: must parse.
    BigDecimal,
}

/// A writer value that is read only to be dropped (a writer-only field), read
/// with every check apache-avro makes when it decodes it.
#[derive(Debug)]
pub(crate) enum Skip {
    /// A leaf.
    Leaf(Leaf),
    /// An enum of this many symbols.
    Enum { symbols: usize },
    /// An array.
    Array {
        items: SkipId,
        /// Items take no bytes (nulls): a block is skipped by its count.
        empty_items: bool,
    },
    /// A map of these values.
    Map(SkipId),
    /// A union of these branches.
    Union(Box<[SkipId]>),
    /// A record of these fields.
    Record(Box<[(Box<str>, SkipId)]>),
    /// A placeholder while a recursive record is compiled.
    Pending,
}

/// What the reader makes of a writer leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conv {
    Null,
    Boolean,
    Int,
    LongToInt,
    IntToLong,
    Long,
    IntToFloat,
    LongToFloat,
    Float,
    DoubleToFloat,
    StringToFloat,
    IntToDouble,
    LongToDouble,
    FloatToDouble,
    Double,
    StringToDouble,
    Bytes,
    StringToBytes,
    String,
    BytesToString,
    Fixed,
    StringToFixed,
    BytesToFixed(usize),
    Uuid,
    StringToUuid,
    BytesToUuid,
    FixedToUuid,
    StringToUuidFixed,
}

/// One step of the plan.
#[derive(Debug)]
pub(crate) enum Node {
    /// A leaf, read and converted.
    Leaf {
        /// How the writer wrote it.
        leaf: Leaf,
        /// What the reader makes of it.
        conv: Conv,
    },
    /// A writer enum read as a reader enum.
    Enum(Box<EnumPlan>),
    /// A writer string read as a reader enum.
    EnumFromString(Box<EnumFromString>),
    /// A record, field by field.
    Record(Box<RecordPlan>),
    /// An array of `items`.
    Array { items: NodeId },
    /// A map; `values_may_fail` when resolving a value can fail, which makes
    /// a repeated key matter (only its last value is resolved, as in the map
    /// apache-avro decoded).
    Map {
        values: NodeId,
        values_may_fail: bool,
    },
    /// A writer union: its branch index, then the node of that branch.
    WriterUnion(Box<[NodeId]>),
    /// The value of a branch of the reader's union; `null` when it is the
    /// null branch (no bytes).
    ReaderUnion { value: NodeId, null: bool },
    /// A reader union whose branch depends on the value.
    Select(Box<Select>),
    /// A writer value the reader cannot take.
    Fail(Box<Failure>),
    /// A placeholder while a recursive record is compiled.
    Pending,
}

/// A writer enum resolved by symbol.
#[derive(Debug)]
pub(crate) struct EnumPlan {
    /// The writer's symbols, for messages; their count bounds the index.
    pub(crate) writer_symbols: Box<[String]>,
    /// For each writer symbol, the reader symbol it reads as.
    pub(crate) to_reader: Box<[Option<u32>]>,
    /// The reader enum's symbols.
    pub(crate) reader_symbols: Box<[String]>,
    /// The reader enum's full name, for messages.
    pub(crate) name: String,
}

/// A writer string resolved as a reader enum symbol.
#[derive(Debug)]
pub(crate) struct EnumFromString {
    /// The reader enum's symbols.
    pub(crate) symbols: Box<[String]>,
    /// The reader enum's default, when it has a valid one.
    pub(crate) default: Option<u32>,
    /// The reader enum's full name, for messages.
    pub(crate) name: String,
}

/// A record: the writer's fields in order, then the reader-only fields.
#[derive(Debug)]
pub(crate) struct RecordPlan {
    /// The writer's fields, in the order they are written.
    pub(crate) steps: Box<[Step]>,
    /// The reader-only fields, in reader order.
    pub(crate) defaults: Box<[DefaultField]>,
    /// A reader-only field that has no usable default, by its position among
    /// the reader's fields: the record never resolves.
    pub(crate) fail: Option<(u32, StaticFault)>,
}

/// One writer field.
#[derive(Debug)]
pub(crate) struct Step {
    /// The field's name (the reader's, for a field both have).
    pub(crate) name: Box<str>,
    /// What is done with it.
    pub(crate) kind: StepKind,
}

/// What is done with a writer field.
#[derive(Debug)]
pub(crate) enum StepKind {
    /// Not in the reader: read and dropped.
    Skip(SkipId),
    /// The reader's field at `position` (reader order decides which of two
    /// failing fields is reported, as apache-avro resolves in that order).
    Field { node: NodeId, position: u32 },
}

/// A reader-only field: its default, resolved and Avro-encoded once, with the
/// plan that reads the encoding back (as written, no resolution).
#[derive(Debug)]
pub(crate) struct DefaultField {
    /// The reader's field.
    pub(crate) name: Box<str>,
    /// The plan that reads `bytes` as the field's type.
    pub(crate) node: NodeId,
    /// The default, Avro-encoded.
    pub(crate) bytes: Box<[u8]>,
}

/// A reader union's branch chosen by value, as apache-avro chooses it.
#[derive(Debug)]
pub(crate) struct Select {
    /// The branch of the value's unnamed kind; `checked` when it is a map or
    /// array branch, taken only if the value resolves into it.
    pub(crate) unnamed: Option<Candidate>,
    pub(crate) unnamed_checked: bool,
    /// The named branches of the value's kind, in order.
    pub(crate) named: Box<[Candidate]>,
    /// Every branch, in order, when neither of the above fits.
    pub(crate) any: Box<[Candidate]>,
    /// No branch fits: the writer value is read and this fault reported.
    pub(crate) failure: Failure,
}

/// One branch a value may resolve into.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    /// The branch's index in the reader's union.
    pub(crate) index: u32,
    /// The [`Node::ReaderUnion`] that reads the value as this branch.
    pub(crate) node: NodeId,
    /// The value's resolution into the branch, to try it.
    pub(crate) value: NodeId,
    /// Whether the value may not resolve into the branch.
    pub(crate) outcome: Outcome,
}

/// A fault known when the plan is made.
#[derive(Debug, Clone)]
pub(crate) struct StaticFault {
    /// The dead-letter reason apache-avro gave it.
    pub(crate) reason: Reason,
    /// What does not resolve.
    pub(crate) message: String,
}

impl StaticFault {
    /// The fault as a resolution error.
    pub(crate) fn error(&self) -> Error {
        Error::unresolvable(self.reason, self.message.clone())
    }
}

/// A writer value the reader cannot take: it is read, then the fault reported.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The fault reported.
    pub(crate) fault: StaticFault,
    /// How the writer value is read past.
    pub(crate) writer: SkipId,
    /// The writer value is a plain string whose text apache-avro put in its
    /// message, and so into the reason: an `enum` or `union` in it made the
    /// message an invalid enum.
    pub(crate) text_in_reason: bool,
}

/// Whether resolving a value through a node can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Never fails on a value that decodes.
    Sure,
    /// Fails for some values.
    Maybe,
    /// Fails for every value.
    Never,
}

impl Outcome {
    /// Both must resolve.
    fn and(self, other: Outcome) -> Outcome {
        match (self, other) {
            (Outcome::Never, _) | (_, Outcome::Never) => Outcome::Never,
            (Outcome::Maybe, _) | (_, Outcome::Maybe) => Outcome::Maybe,
            _ => Outcome::Sure,
        }
    }
}

/// The compiled plan of one writer schema against one reader schema.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Every step; a [`NodeId`] is an index here.
    pub(crate) nodes: Vec<Node>,
    /// How writer-only values are skipped; a [`SkipId`] is an index here.
    pub(crate) skips: Vec<Skip>,
    /// The step of the whole record.
    pub(crate) root: NodeId,
    /// apache-avro's allocation limits, which decide some reasons.
    pub(crate) limits: Limits,
}

impl Plan {
    /// The plan of `writer` read as `reader`. With `as_written` (the schemas
    /// are equal), values are read as written, with no resolution, as
    /// Touchline always read them.
    pub(crate) fn compile(
        writer: &Schema,
        reader: &Schema,
        as_written: bool,
    ) -> Result<Plan, String> {
        let writer_names = names_of(writer)?;
        let reader_names = names_of(reader)?;
        let mut compiler = Compiler {
            writer_names: &writer_names,
            reader_names: &reader_names,
            reader_root: reader,
            nodes: Vec::new(),
            outcomes: Vec::new(),
            skips: Vec::new(),
            memo: HashMap::new(),
            skip_memo: HashMap::new(),
        };
        let root = if as_written {
            compiler.identity(writer, None, Side::Writer)?
        } else {
            compiler.resolve(writer, None, reader, None)?
        };
        Ok(Plan {
            nodes: compiler.nodes,
            skips: compiler.skips,
            root,
            limits: Limits::of_apache_avro(),
        })
    }
}

fn names_of(schema: &Schema) -> Result<NamesRef<'_>, String> {
    ResolvedSchema::try_from(schema)
        .map(|resolved| resolved.get_names().clone())
        .map_err(|e| e.to_string())
}

/// Which schema's named types a reference is looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    Writer,
    Reader,
}

/// How a pair of schemas is compiled, for the memo of recursive records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    Resolve,
    Identity(Side),
}

struct Compiler<'s, 'n> {
    writer_names: &'n NamesRef<'s>,
    reader_names: &'n NamesRef<'s>,
    reader_root: &'s Schema,
    nodes: Vec<Node>,
    outcomes: Vec<Outcome>,
    skips: Vec<Skip>,
    /// Records compiled or being compiled, by schema addresses.
    memo: HashMap<(usize, usize, Mode), NodeId>,
    skip_memo: HashMap<usize, SkipId>,
}

/// The address of a schema, as a memo key.
fn address(schema: &Schema) -> usize {
    std::ptr::from_ref(schema) as usize
}

fn id(index: usize) -> Result<u32, String> {
    u32::try_from(index).map_err(|_| "the schema is too large to plan".to_owned())
}

impl<'s> Compiler<'s, '_> {
    fn names(&self, side: Side) -> &NamesRef<'s> {
        match side {
            Side::Writer => self.writer_names,
            Side::Reader => self.reader_names,
        }
    }

    /// Follows a reference to the named type it stands for.
    fn deref(
        &self,
        side: Side,
        schema: &'s Schema,
        namespace: Namespace<'s>,
    ) -> Result<(&'s Schema, Namespace<'s>), String> {
        match schema {
            Schema::Ref { name } => {
                let full = name.fully_qualified_name(namespace);
                let found = self
                    .names(side)
                    .get(full.as_ref())
                    .copied()
                    .ok_or_else(|| {
                        format!(
                            "the schema refers to `{}`, which it does not define",
                            full.fullname(None)
                        )
                    })?;
                Ok((found, found.namespace().or(namespace)))
            }
            _ => Ok((schema, namespace)),
        }
    }

    fn push(&mut self, node: Node, outcome: Outcome) -> Result<NodeId, String> {
        let index = id(self.nodes.len())?;
        self.nodes.push(node);
        self.outcomes.push(outcome);
        Ok(index)
    }

    fn outcome(&self, node: NodeId) -> Outcome {
        self.outcomes
            .get(node as usize)
            .copied()
            .unwrap_or(Outcome::Maybe)
    }

    fn fail(&mut self, failure: Failure) -> Result<NodeId, String> {
        self.push(Node::Fail(Box::new(failure)), Outcome::Never)
    }

    /// `writer` resolved into `reader`.
    fn resolve(
        &mut self,
        writer: &'s Schema,
        writer_ns: Namespace<'s>,
        reader: &'s Schema,
        reader_ns: Namespace<'s>,
    ) -> Result<NodeId, String> {
        let (writer, writer_ns) = self.deref(Side::Writer, writer, writer_ns)?;
        let (reader, reader_ns) = self.deref(Side::Reader, reader, reader_ns)?;
        match (writer, reader) {
            (Schema::Union(branches), _) => {
                let mut nodes = Vec::with_capacity(branches.variants().len());
                let mut outcomes = Vec::with_capacity(nodes.capacity());
                for branch in branches.variants() {
                    let node = match reader {
                        Schema::Union(union) => {
                            let (branch, ns) = self.deref(Side::Writer, branch, writer_ns)?;
                            self.union_branch(branch, ns, union, reader_ns)?
                        }
                        _ => self.resolve(branch, writer_ns, reader, reader_ns)?,
                    };
                    outcomes.push(self.outcome(node));
                    nodes.push(node);
                }
                let outcome = if outcomes.iter().all(|o| *o == Outcome::Sure) {
                    Outcome::Sure
                } else if !outcomes.is_empty() && outcomes.iter().all(|o| *o == Outcome::Never) {
                    Outcome::Never
                } else {
                    Outcome::Maybe
                };
                self.push(Node::WriterUnion(nodes.into_boxed_slice()), outcome)
            }
            (_, Schema::Union(union)) => self.union_branch(writer, writer_ns, union, reader_ns),
            _ => self.direct(writer, writer_ns, reader, reader_ns),
        }
    }

    /// A non-union writer value into a reader union, choosing the branch as
    /// apache-avro does, at compile time when the choice does not depend on
    /// the value.
    fn union_branch(
        &mut self,
        writer: &'s Schema,
        writer_ns: Namespace<'s>,
        union: &'s UnionSchema,
        reader_ns: Namespace<'s>,
    ) -> Result<NodeId, String> {
        let variants = union.variants();
        let (unnamed_kind, named_kind) = value_kinds(SchemaKind::from(writer));
        let unnamed = unnamed_kind.and_then(|kind| {
            variants
                .iter()
                .position(|v| v.name().is_none() && base_kind(v) == kind)
        });
        let unnamed_checked =
            unnamed.is_some_and(|i| matches!(variants[i], Schema::Map(_) | Schema::Array(_)));
        let named: Vec<usize> = named_kind
            .map(|kind| {
                (0..variants.len())
                    .filter(|&i| {
                        let variant = &variants[i];
                        variant.name().is_some()
                            && (base_kind(variant) == kind || matches!(variant, Schema::Ref { .. }))
                    })
                    .collect()
            })
            .unwrap_or_default();

        let mut candidates: Vec<Option<Candidate>> = vec![None; variants.len()];
        let mut candidate = |this: &mut Self, index: usize| -> Result<Candidate, String> {
            if let Some(found) = candidates[index] {
                return Ok(found);
            }
            let value = this.resolve(writer, writer_ns, &variants[index], reader_ns)?;
            let outcome = this.outcome(value);
            let null = matches!(
                this.nodes[value as usize],
                Node::Leaf {
                    conv: Conv::Null,
                    ..
                }
            );
            let index32 = id(index)?;
            let node = this.push(Node::ReaderUnion { value, null }, outcome)?;
            let found = Candidate {
                index: index32,
                node,
                value,
                outcome,
            };
            candidates[index] = Some(found);
            Ok(found)
        };

        let unnamed = unnamed.map(|i| candidate(self, i)).transpose()?;
        let named = named
            .into_iter()
            .map(|i| candidate(self, i))
            .collect::<Result<Vec<_>, _>>()?;
        let any = (0..variants.len())
            .map(|i| candidate(self, i))
            .collect::<Result<Vec<_>, _>>()?;

        // The choice, when it does not depend on the value.
        let unnamed_hit = match unnamed {
            None => Known(None),
            Some(c) if !unnamed_checked => Known(Some(c)),
            Some(c) => first_fitting(&[c]),
        };
        let named_hit = first_fitting(&named);
        let chosen = match (unnamed_hit, named_hit) {
            (Known(u), Known(n)) => match (u, n) {
                (Some(u), Some(n)) if u.index < n.index => Known(Some(u)),
                (Some(_), Some(n)) => Known(Some(n)),
                (Some(u), None) => Known(Some(u)),
                (None, Some(n)) => Known(Some(n)),
                (None, None) => first_fitting(&any),
            },
            _ => Unknown,
        };
        let failure = Failure {
            fault: StaticFault {
                reason: Reason::InvalidEnum,
                message: format!(
                    "the writer's {} fits no branch of the reader's union {}",
                    describe(writer),
                    describe_union(union)
                ),
            },
            writer: self.skip(writer, writer_ns)?,
            text_in_reason: false,
        };
        match chosen {
            Known(Some(c)) => Ok(c.node),
            Known(None) => self.fail(failure),
            Unknown => {
                let select = Select {
                    unnamed,
                    unnamed_checked,
                    named: named.into_boxed_slice(),
                    any: any.into_boxed_slice(),
                    failure,
                };
                self.push(Node::Select(Box::new(select)), Outcome::Maybe)
            }
        }
    }

    /// Neither side a union.
    fn direct(
        &mut self,
        writer: &'s Schema,
        writer_ns: Namespace<'s>,
        reader: &'s Schema,
        reader_ns: Namespace<'s>,
    ) -> Result<NodeId, String> {
        match (writer, reader) {
            (Schema::Record(w), Schema::Record(r)) => self.record(w, writer_ns, r, reader_ns),
            (Schema::Map(_), Schema::Record(_)) | (Schema::Array(_), Schema::Bytes) => {
                let failure = self.unsupported(writer, writer_ns, reader)?;
                self.fail(failure)
            }
            (Schema::Enum(w), Schema::Enum(r)) => {
                let to_reader: Box<[Option<u32>]> = w
                    .symbols
                    .iter()
                    .map(|symbol| enum_symbol(r, symbol))
                    .collect();
                let outcome = if to_reader.iter().all(Option::is_some) {
                    Outcome::Sure
                } else if to_reader.iter().all(Option::is_none) {
                    Outcome::Never
                } else {
                    Outcome::Maybe
                };
                let plan = EnumPlan {
                    writer_symbols: w.symbols.clone().into_boxed_slice(),
                    to_reader,
                    reader_symbols: r.symbols.clone().into_boxed_slice(),
                    name: r.name.fullname(None),
                };
                self.push(Node::Enum(Box::new(plan)), outcome)
            }
            (Schema::String, Schema::Enum(r)) => {
                let default = r.default.as_ref().and_then(|d| position(&r.symbols, d));
                let outcome = if default.is_some() {
                    Outcome::Sure
                } else {
                    Outcome::Maybe
                };
                let plan = EnumFromString {
                    symbols: r.symbols.clone().into_boxed_slice(),
                    default,
                    name: r.name.fullname(None),
                };
                self.push(Node::EnumFromString(Box::new(plan)), outcome)
            }
            (Schema::Array(w), Schema::Array(r)) => {
                let items = self.resolve(&w.items, writer_ns, &r.items, reader_ns)?;
                let outcome = sure_or_maybe(self.outcome(items));
                self.push(Node::Array { items }, outcome)
            }
            (Schema::Map(w), Schema::Map(r)) => {
                let values = self.resolve(&w.types, writer_ns, &r.types, reader_ns)?;
                let outcome = sure_or_maybe(self.outcome(values));
                let values_may_fail = self.outcome(values) != Outcome::Sure;
                self.push(
                    Node::Map {
                        values,
                        values_may_fail,
                    },
                    outcome,
                )
            }
            (_, Schema::Decimal(_) | Schema::BigDecimal | Schema::Duration(_)) => {
                let failure = self.unsupported(writer, writer_ns, reader)?;
                self.fail(failure)
            }
            _ => {
                let converted = writer_leaf(writer)
                    .and_then(|leaf| leaf_conv(writer, reader).map(|conv| (leaf, conv)));
                match converted {
                    Some((leaf, Ok((conv, outcome)))) => {
                        self.push(Node::Leaf { leaf, conv }, outcome)
                    }
                    Some((_, Err(fault))) => {
                        let failure = Failure {
                            fault,
                            writer: self.skip(writer, writer_ns)?,
                            text_in_reason: false,
                        };
                        self.fail(failure)
                    }
                    None => {
                        let failure = self.mismatch(writer, writer_ns, reader)?;
                        self.fail(failure)
                    }
                }
            }
        }
    }

    /// A writer value of a type the reader's type does not accept.
    fn mismatch(
        &mut self,
        writer: &'s Schema,
        writer_ns: Namespace<'s>,
        reader: &'s Schema,
    ) -> Result<Failure, String> {
        let mentions = expected_mentions(reader) || self.value_mentions(writer, writer_ns, 0);
        Ok(Failure {
            fault: StaticFault {
                reason: if mentions {
                    Reason::InvalidEnum
                } else {
                    Reason::InvalidAvro
                },
                message: format!(
                    "the writer's {} cannot be read as the reader's {}",
                    describe(writer),
                    describe(reader)
                ),
            },
            writer: self.skip(writer, writer_ns)?,
            text_in_reason: matches!(writer, Schema::String),
        })
    }

    /// A resolution this decoder refuses although apache-avro allowed it.
    fn unsupported(
        &mut self,
        writer: &'s Schema,
        writer_ns: Namespace<'s>,
        reader: &'s Schema,
    ) -> Result<Failure, String> {
        Ok(Failure {
            fault: StaticFault {
                reason: Reason::Incompatible,
                message: format!(
                    "the writer's {} cannot be read as the reader's {}: the Avro specification does not resolve these",
                    describe(writer),
                    describe(reader)
                ),
            },
            writer: self.skip(writer, writer_ns)?,
            text_in_reason: false,
        })
    }

    /// Whether apache-avro's debug print of a value of `writer` says `enum`
    /// or `union` (its messages were classified by those words): an enum
    /// value, a record with such a field or field name, a collection of such
    /// items. Strings are data and are looked at when the value is read.
    fn value_mentions(&self, writer: &'s Schema, namespace: Namespace<'s>, depth: u32) -> bool {
        if depth > 32 {
            return false;
        }
        let Ok((writer, namespace)) = self.deref(Side::Writer, writer, namespace) else {
            return false;
        };
        match writer {
            Schema::Enum(_) | Schema::Union(_) => true,
            Schema::Record(record) => {
                let namespace = record.name.namespace().or(namespace);
                record.fields.iter().any(|field| {
                    mentions(&field.name)
                        || self.value_mentions(&field.schema, namespace, depth + 1)
                })
            }
            Schema::Array(array) => self.value_mentions(&array.items, namespace, depth + 1),
            Schema::Map(map) => self.value_mentions(&map.types, namespace, depth + 1),
            _ => false,
        }
    }

    fn record(
        &mut self,
        writer: &'s RecordSchema,
        writer_ns: Namespace<'s>,
        reader: &'s RecordSchema,
        reader_ns: Namespace<'s>,
    ) -> Result<NodeId, String> {
        let key = (
            std::ptr::from_ref(writer) as usize,
            std::ptr::from_ref(reader) as usize,
            Mode::Resolve,
        );
        if let Some(found) = self.memo.get(&key) {
            return Ok(*found);
        }
        let node = self.push(Node::Pending, Outcome::Maybe)?;
        self.memo.insert(key, node);
        let writer_ns = writer.name.namespace().or(writer_ns);
        let reader_ns = reader.name.namespace().or(reader_ns);

        let mut outcome = Outcome::Sure;
        let mut steps = Vec::with_capacity(writer.fields.len());
        for field in &writer.fields {
            let kind = match reader.fields.iter().position(|r| r.name == field.name) {
                Some(position) => {
                    let value = self.resolve(
                        &field.schema,
                        writer_ns,
                        &reader.fields[position].schema,
                        reader_ns,
                    )?;
                    outcome = outcome.and(self.outcome(value));
                    StepKind::Field {
                        node: value,
                        position: id(position)?,
                    }
                }
                None => StepKind::Skip(self.skip(&field.schema, writer_ns)?),
            };
            steps.push(Step {
                name: field.name.as_str().into(),
                kind,
            });
        }
        let mut defaults = Vec::new();
        let mut fail = None;
        for (position, field) in reader.fields.iter().enumerate() {
            if writer.fields.iter().any(|w| w.name == field.name) {
                continue;
            }
            match self.default_of(field, reader_ns)? {
                Ok(default) => defaults.push(default),
                Err(fault) => {
                    if fail.is_none() {
                        fail = Some((id(position)?, fault));
                    }
                }
            }
        }
        if fail.is_some() {
            outcome = Outcome::Never;
        }
        self.nodes[node as usize] = Node::Record(Box::new(RecordPlan {
            steps: steps.into_boxed_slice(),
            defaults: defaults.into_boxed_slice(),
            fail,
        }));
        self.outcomes[node as usize] = outcome;
        Ok(node)
    }

    /// The default of a reader-only field, as apache-avro resolves it, encoded.
    fn default_of(
        &mut self,
        field: &'s RecordField,
        reader_ns: Namespace<'s>,
    ) -> Result<Result<DefaultField, StaticFault>, String> {
        let Some(json) = &field.default else {
            let apache_message = format!("Missing field in record: {:?}", field.name);
            return Ok(Err(StaticFault {
                reason: classify(&apache_message),
                message: format!(
                    "the reader's field `{}` is not in the writer's record and has no default",
                    field.name
                ),
            }));
        };
        let value = match resolved_default(field, json, self.reader_root) {
            Ok(value) => value,
            Err(e) => {
                let text = e.to_string();
                return Ok(Err(StaticFault {
                    reason: classify(&text),
                    message: format!(
                        "the default of the reader's field `{}` does not fit its type: {text}",
                        field.name
                    ),
                }));
            }
        };
        let encoded = GenericDatumWriter::builder(&field.schema)
            .schemata(vec![self.reader_root])
            .and_then(|builder| builder.build())
            .and_then(|writer| writer.write_value_to_vec(value));
        let bytes = match encoded {
            Ok(bytes) => bytes,
            Err(e) => {
                return Ok(Err(StaticFault {
                    reason: Reason::Incompatible,
                    message: format!(
                        "the default of the reader's field `{}` cannot be encoded: {e}",
                        field.name
                    ),
                }))
            }
        };
        let node = self.identity(&field.schema, reader_ns, Side::Reader)?;
        Ok(Ok(DefaultField {
            name: field.name.as_str().into(),
            node,
            bytes: bytes.into_boxed_slice(),
        }))
    }

    /// A schema read as written: each value as apache-avro decodes it.
    fn identity(
        &mut self,
        schema: &'s Schema,
        namespace: Namespace<'s>,
        side: Side,
    ) -> Result<NodeId, String> {
        let (schema, namespace) = self.deref(side, schema, namespace)?;
        match schema {
            Schema::Union(union) => {
                let mut branches = Vec::with_capacity(union.variants().len());
                for variant in union.variants() {
                    let value = self.identity(variant, namespace, side)?;
                    let null = matches!(
                        self.nodes[value as usize],
                        Node::Leaf {
                            conv: Conv::Null,
                            ..
                        }
                    );
                    let outcome = self.outcome(value);
                    branches.push(self.push(Node::ReaderUnion { value, null }, outcome)?);
                }
                self.push(
                    Node::WriterUnion(branches.into_boxed_slice()),
                    Outcome::Sure,
                )
            }
            Schema::Record(record) => {
                let key = (address(schema), address(schema), Mode::Identity(side));
                if let Some(found) = self.memo.get(&key) {
                    return Ok(*found);
                }
                let node = self.push(Node::Pending, Outcome::Sure)?;
                self.memo.insert(key, node);
                let namespace = record.name.namespace().or(namespace);
                let mut steps = Vec::with_capacity(record.fields.len());
                for (position, field) in record.fields.iter().enumerate() {
                    let value = self.identity(&field.schema, namespace, side)?;
                    steps.push(Step {
                        name: field.name.as_str().into(),
                        kind: StepKind::Field {
                            node: value,
                            position: id(position)?,
                        },
                    });
                }
                self.nodes[node as usize] = Node::Record(Box::new(RecordPlan {
                    steps: steps.into_boxed_slice(),
                    defaults: Box::new([]),
                    fail: None,
                }));
                Ok(node)
            }
            Schema::Enum(e) => {
                let plan = EnumPlan {
                    writer_symbols: e.symbols.clone().into_boxed_slice(),
                    to_reader: (0..e.symbols.len()).map(|i| id(i).ok()).collect(),
                    reader_symbols: e.symbols.clone().into_boxed_slice(),
                    name: e.name.fullname(None),
                };
                self.push(Node::Enum(Box::new(plan)), Outcome::Sure)
            }
            Schema::Array(array) => {
                let items = self.identity(&array.items, namespace, side)?;
                self.push(Node::Array { items }, Outcome::Sure)
            }
            Schema::Map(map) => {
                let values = self.identity(&map.types, namespace, side)?;
                self.push(
                    Node::Map {
                        values,
                        values_may_fail: false,
                    },
                    Outcome::Sure,
                )
            }
            _ => match (writer_leaf(schema), identity_conv(schema)) {
                (Some(leaf), Some(conv)) => self.push(Node::Leaf { leaf, conv }, Outcome::Sure),
                _ => {
                    let failure = Failure {
                        fault: StaticFault {
                            reason: Reason::Incompatible,
                            message: format!(
                                "Touchline's decoder does not read {} values",
                                describe(schema)
                            ),
                        },
                        writer: self.skip_on(side, schema, namespace)?,
                        text_in_reason: false,
                    };
                    self.fail(failure)
                }
            },
        }
    }

    /// How a writer value is skipped.
    fn skip(&mut self, schema: &'s Schema, namespace: Namespace<'s>) -> Result<SkipId, String> {
        self.skip_on(Side::Writer, schema, namespace)
    }

    fn skip_on(
        &mut self,
        side: Side,
        schema: &'s Schema,
        namespace: Namespace<'s>,
    ) -> Result<SkipId, String> {
        let (schema, namespace) = self.deref(side, schema, namespace)?;
        let key = address(schema);
        if let Some(found) = self.skip_memo.get(&key) {
            return Ok(*found);
        }
        let index = id(self.skips.len())?;
        self.skips.push(Skip::Pending);
        self.skip_memo.insert(key, index);
        let skip = match schema {
            Schema::Union(union) => Skip::Union(
                union
                    .variants()
                    .iter()
                    .map(|v| self.skip_on(side, v, namespace))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_boxed_slice(),
            ),
            Schema::Record(record) => {
                let namespace = record.name.namespace().or(namespace);
                Skip::Record(
                    record
                        .fields
                        .iter()
                        .map(|f| {
                            self.skip_on(side, &f.schema, namespace)
                                .map(|s| (f.name.as_str().into(), s))
                        })
                        .collect::<Result<Vec<_>, _>>()?
                        .into_boxed_slice(),
                )
            }
            Schema::Enum(e) => Skip::Enum {
                symbols: e.symbols.len(),
            },
            Schema::Array(array) => {
                let items = self.skip_on(side, &array.items, namespace)?;
                Skip::Array {
                    items,
                    empty_items: self.takes_no_bytes(items, 0),
                }
            }
            Schema::Map(map) => Skip::Map(self.skip_on(side, &map.types, namespace)?),
            _ => Skip::Leaf(
                writer_leaf(schema)
                    .ok_or_else(|| format!("cannot read {} values", describe(schema)))?,
            ),
        };
        self.skips[index as usize] = skip;
        Ok(index)
    }

    /// Whether a value takes no bytes and cannot fail: a null, or a record of
    /// such values.
    fn takes_no_bytes(&self, skip: SkipId, depth: u32) -> bool {
        if depth > 32 {
            return false;
        }
        match self.skips.get(skip as usize) {
            Some(Skip::Leaf(Leaf::Null | Leaf::Fixed(0))) => true,
            Some(Skip::Record(fields)) => fields
                .iter()
                .all(|(_, f)| self.takes_no_bytes(*f, depth + 1)),
            _ => false,
        }
    }
}

/// A choice known at compile time, or one that depends on the value.
#[derive(Debug, Clone, Copy)]
enum Choice {
    Known(Option<Candidate>),
    Unknown,
}
use Choice::{Known, Unknown};

/// The first candidate the value resolves into, when that is known without
/// the value.
fn first_fitting(candidates: &[Candidate]) -> Choice {
    for c in candidates {
        match c.outcome {
            Outcome::Sure => return Known(Some(*c)),
            Outcome::Never => continue,
            Outcome::Maybe => return Unknown,
        }
    }
    Known(None)
}

fn sure_or_maybe(items: Outcome) -> Outcome {
    if items == Outcome::Sure {
        Outcome::Sure
    } else {
        // An empty collection resolves whatever its items would do.
        Outcome::Maybe
    }
}

fn position(symbols: &[String], symbol: &str) -> Option<u32> {
    symbols
        .iter()
        .position(|s| s == symbol)
        .and_then(|i| u32::try_from(i).ok())
}

/// The reader symbol a writer symbol reads as: itself, else the reader enum's
/// default.
fn enum_symbol(reader: &EnumSchema, symbol: &str) -> Option<u32> {
    position(&reader.symbols, symbol).or_else(|| {
        reader
            .default
            .as_ref()
            .and_then(|d| position(&reader.symbols, d))
    })
}

/// The default value of a reader field, resolved as apache-avro's
/// `resolve_record` resolves it.
fn resolved_default(
    field: &RecordField,
    json: &serde_json::Value,
    root: &Schema,
) -> Result<Value, apache_avro::Error> {
    let value = match &field.schema {
        Schema::Enum(_) => {
            Value::try_from(json.clone())?.resolve_schemata(&field.schema, vec![root])?
        }
        Schema::Union(union) => match union.variants().first() {
            Some(Schema::Null) | None => Value::Union(0, Box::new(Value::Null)),
            Some(first) => Value::Union(
                0,
                Box::new(Value::try_from(json.clone())?.resolve_schemata(first, vec![root])?),
            ),
        },
        _ => Value::try_from(json.clone())?,
    };
    value.resolve_schemata(&field.schema, vec![root])
}

/// The dead-letter reason apache-avro's message gave: any mention of an enum
/// or a union made it an invalid enum.
pub(crate) fn classify(message: &str) -> Reason {
    if mentions(message) {
        Reason::InvalidEnum
    } else {
        Reason::InvalidAvro
    }
}

/// Whether a text says `enum` or `union`, in any case.
pub(crate) fn mentions(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("enum") || lower.contains("union")
}

/// Whether apache-avro's message for a value the reader type does not accept
/// says `enum` or `union` before the value itself.
fn expected_mentions(reader: &Schema) -> bool {
    let kind_mentions = |schema: &Schema| {
        matches!(
            SchemaKind::from(schema),
            SchemaKind::Enum | SchemaKind::Union
        )
    };
    match reader {
        Schema::Enum(_) => true,
        Schema::Array(array) => kind_mentions(&array.items),
        Schema::Map(map) => kind_mentions(&map.types),
        Schema::Record(record) => record
            .fields
            .iter()
            .any(|f| mentions(&f.name) || kind_mentions(&f.schema)),
        _ => false,
    }
}

/// The kinds a union is searched by for a value of `kind`: its unnamed kind
/// and its named kind (apache-avro's `value_to_base_schemakind`).
fn value_kinds(kind: SchemaKind) -> (Option<SchemaKind>, Option<SchemaKind>) {
    use SchemaKind as K;
    match kind {
        K::Decimal => (Some(K::Bytes), Some(K::Fixed)),
        K::BigDecimal => (Some(K::Bytes), None),
        K::Uuid => (Some(K::String), Some(K::Fixed)),
        K::Date | K::TimeMillis => (Some(K::Int), None),
        K::TimeMicros
        | K::TimestampMillis
        | K::TimestampMicros
        | K::TimestampNanos
        | K::LocalTimestampMillis
        | K::LocalTimestampMicros
        | K::LocalTimestampNanos => (Some(K::Long), None),
        K::Duration => (None, Some(K::Fixed)),
        K::Record | K::Enum | K::Fixed => (None, Some(kind)),
        K::Map => (Some(K::Map), Some(K::Record)),
        _ => (Some(kind), None),
    }
}

/// A union variant's kind with logical types reduced to their base type
/// (apache-avro's `schema_to_base_schemakind`).
fn base_kind(schema: &Schema) -> SchemaKind {
    use SchemaKind as K;
    match schema {
        Schema::Date | Schema::TimeMillis => K::Int,
        Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => K::Long,
        Schema::Uuid(UuidSchema::Bytes)
        | Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Bytes,
            ..
        }) => K::Bytes,
        Schema::Uuid(UuidSchema::String) => K::String,
        Schema::Uuid(UuidSchema::Fixed(_))
        | Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Fixed(_),
            ..
        })
        | Schema::Duration(_) => K::Fixed,
        other => SchemaKind::from(other),
    }
}

/// How a writer leaf is read; `None` for records, enums, collections, unions.
fn writer_leaf(schema: &Schema) -> Option<Leaf> {
    Some(match schema {
        Schema::Null => Leaf::Null,
        Schema::Boolean => Leaf::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Leaf::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Leaf::Long,
        Schema::Float => Leaf::Float,
        Schema::Double => Leaf::Double,
        Schema::Bytes
        | Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Bytes,
            ..
        }) => Leaf::Bytes,
        Schema::String => Leaf::String,
        Schema::Uuid(UuidSchema::String) => Leaf::UuidString,
        Schema::Uuid(UuidSchema::Bytes) => Leaf::UuidBytes,
        Schema::Uuid(UuidSchema::Fixed(fixed)) => Leaf::UuidFixed(fixed.size),
        Schema::Fixed(fixed)
        | Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Fixed(fixed),
            ..
        }) => Leaf::Fixed(fixed.size),
        Schema::Duration(fixed) => Leaf::Duration(fixed.size),
        Schema::BigDecimal => Leaf::BigDecimal,
        _ => return None,
    })
}

/// The conversion of a leaf read as written; `None` for the logical types
/// the records never hold (decimals, durations), which the decoder refuses.
fn identity_conv(schema: &Schema) -> Option<Conv> {
    Some(match schema {
        Schema::Null => Conv::Null,
        Schema::Boolean => Conv::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Conv::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Conv::Long,
        Schema::Float => Conv::Float,
        Schema::Double => Conv::Double,
        Schema::Bytes => Conv::Bytes,
        Schema::String => Conv::String,
        Schema::Fixed(_) => Conv::Fixed,
        Schema::Uuid(_) => Conv::Uuid,
        _ => return None,
    })
}

/// How a writer leaf resolves into a reader leaf type, as apache-avro's
/// `Value::resolve_*` accept values: the conversion and whether it can fail
/// on the value, or the fault of a pair that never resolves. `None` when the
/// reader type is not a leaf this decoder reads.
fn leaf_conv(writer: &Schema, reader: &Schema) -> Option<Result<(Conv, Outcome), StaticFault>> {
    use Outcome::{Maybe, Sure};
    use SchemaKind as K;
    let kind = SchemaKind::from(writer);
    let same = kind == SchemaKind::from(reader);
    let ok = |conv, outcome| Some(Ok((conv, outcome)));
    let size_fault = |expected: usize, got: usize| {
        Some(Err(StaticFault {
            reason: Reason::InvalidAvro,
            message: format!(
                "the writer's fixed of {got} bytes cannot be read as the reader's fixed of {expected} bytes"
            ),
        }))
    };
    match (reader, kind) {
        (Schema::Null, K::Null) => ok(Conv::Null, Sure),
        (Schema::Boolean, K::Boolean) => ok(Conv::Boolean, Sure),
        (Schema::Int, K::Int) => ok(Conv::Int, Sure),
        (Schema::Int, K::Long) => ok(Conv::LongToInt, Maybe),
        (Schema::Long, K::Int) => ok(Conv::IntToLong, Sure),
        (Schema::Long, K::Long) => ok(Conv::Long, Sure),
        (Schema::Float, K::Int) => ok(Conv::IntToFloat, Sure),
        (Schema::Float, K::Long) => ok(Conv::LongToFloat, Sure),
        (Schema::Float, K::Float) => ok(Conv::Float, Sure),
        (Schema::Float, K::Double) => ok(Conv::DoubleToFloat, Sure),
        (Schema::Float, K::String) => ok(Conv::StringToFloat, Maybe),
        (Schema::Double, K::Int) => ok(Conv::IntToDouble, Sure),
        (Schema::Double, K::Long) => ok(Conv::LongToDouble, Sure),
        (Schema::Double, K::Float) => ok(Conv::FloatToDouble, Sure),
        (Schema::Double, K::Double) => ok(Conv::Double, Sure),
        (Schema::Double, K::String) => ok(Conv::StringToDouble, Maybe),
        (Schema::Bytes, K::Bytes) => ok(Conv::Bytes, Sure),
        (Schema::Bytes, K::String) => ok(Conv::StringToBytes, Sure),
        (Schema::String, K::String) => ok(Conv::String, Sure),
        (Schema::String, K::Bytes | K::Fixed) => ok(Conv::BytesToString, Maybe),
        (Schema::Fixed(fixed), K::Fixed) => match writer {
            Schema::Fixed(w) if w.size == fixed.size => ok(Conv::Fixed, Sure),
            Schema::Fixed(w) => size_fault(fixed.size, w.size),
            _ => None,
        },
        (Schema::Fixed(_), K::String) => ok(Conv::StringToFixed, Sure),
        (Schema::Fixed(fixed), K::Bytes) => ok(Conv::BytesToFixed(fixed.size), Maybe),
        (Schema::Uuid(_), K::Uuid) => ok(Conv::Uuid, Sure),
        (Schema::Uuid(UuidSchema::String), K::String) => ok(Conv::StringToUuid, Maybe),
        (Schema::Uuid(UuidSchema::Bytes), K::Bytes) => ok(Conv::BytesToUuid, Maybe),
        (Schema::Uuid(UuidSchema::Fixed(_)), K::Fixed) => match writer {
            Schema::Fixed(w) if w.size == 16 => ok(Conv::FixedToUuid, Sure),
            Schema::Fixed(w) => Some(Err(StaticFault {
                reason: Reason::InvalidAvro,
                message: format!(
                    "the writer's fixed of {} bytes cannot be read as a UUID (16 bytes)",
                    w.size
                ),
            })),
            _ => None,
        },
        (Schema::Uuid(UuidSchema::Fixed(_)), K::String) => ok(Conv::StringToUuidFixed, Maybe),
        (Schema::Date | Schema::TimeMillis, K::Int) => ok(Conv::Int, Sure),
        (Schema::Date | Schema::TimeMillis, _) if same => ok(Conv::Int, Sure),
        (
            Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos,
            K::Int,
        ) => ok(Conv::IntToLong, Sure),
        (
            Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos,
            _,
        ) if same || kind == K::Long => ok(Conv::Long, Sure),
        _ => None,
    }
}

/// A schema as messages name it.
fn describe(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => format!("record {}", r.name.fullname(None)),
        Schema::Enum(e) => format!("enum {}", e.name.fullname(None)),
        Schema::Fixed(f) => format!("fixed {} ({} bytes)", f.name.fullname(None), f.size),
        Schema::Ref { name } => name.fullname(None),
        Schema::Union(union) => describe_union(union),
        other => format!("{:?}", SchemaKind::from(other)).to_ascii_lowercase(),
    }
}

fn describe_union(union: &UnionSchema) -> String {
    let branches: Vec<String> = union.variants().iter().map(describe).collect();
    format!("[{}]", branches.join(", "))
}
