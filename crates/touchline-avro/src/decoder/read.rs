//! Walking a body with a [`Plan`]: a serde `Deserializer` that reads each
//! value as the plan says and hands it straight to the record's visitor
//! (strings borrowed from the body, so that only the record's own `String`s
//! allocate), and a checking walk for the rare message that fails.
//!
//! apache-avro decoded the whole body, then resolved the whole value, then
//! filled the record; the first fault of the earliest of those stages is the
//! one a message is dead-lettered for. The deserializer stops at the first
//! fault it meets: a malformed body is then the answer (nothing was resolved
//! or filled before it), but a value the reader or the record cannot take is
//! not, as a later part of the body may be malformed. [`Plan::decode`] then
//! walks the body again with [`check`], which reads everything and keeps the
//! first resolution fault, as apache-avro would have reported it.

use apache_avro::types::Value;
use apache_avro::{Schema, Uuid};
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{
    DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::{forward_to_deserialize_any, Deserialize};

use super::cursor::{Cursor, Error, Fault, Reason, Stage};
use super::plan::{
    classify, mentions, Conv, DefaultField, EnumFromString, EnumPlan, Failure, Leaf, Node, NodeId,
    Outcome, Plan, RecordPlan, Select, Skip, SkipId, StepKind,
};

/// How deep values may nest (recursive schemas); deeper is malformed rather
/// than a stack overflow.
const MAX_DEPTH: u32 = 128;

/// Why a body was not decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// A fault in the body, its resolution or the record.
    Fault(Fault),
    /// The record ended with this many bytes left.
    Trailing(usize),
}

impl Plan {
    /// Decodes `body` into `T`.
    pub(crate) fn decode<'de, T: Deserialize<'de>>(
        &'de self,
        body: &'de [u8],
    ) -> Result<T, Rejection> {
        let mut cursor = Cursor::new(body, self.limits);
        let result = T::deserialize(Reader::new(self, self.root, &mut cursor, 0));
        match result {
            Ok(record) if cursor.remaining() == 0 => Ok(record),
            Ok(_) => Err(Rejection::Trailing(cursor.remaining())),
            Err(error) if error.stage() == Stage::Decode => Err(Rejection::Fault(*error.0)),
            Err(error) => Err(self.explain(body, error)),
        }
    }

    /// The reason for a body whose first fault was a value the reader or the
    /// record cannot take: a later malformed part outranks it, a resolution
    /// fault outranks trailing bytes, which outrank a record fault.
    #[cold]
    fn explain(&self, body: &[u8], first: Error) -> Rejection {
        let mut cursor = Cursor::new(body, self.limits);
        match check(self, self.root, &mut cursor, 0) {
            Err(malformed) => Rejection::Fault(*malformed.0),
            Ok(Some(unresolvable)) => Rejection::Fault(*unresolvable.0),
            Ok(None) if cursor.remaining() > 0 => Rejection::Trailing(cursor.remaining()),
            Ok(None) => Rejection::Fault(*first.0),
        }
    }
}

/// A leaf as written.
#[derive(Debug, Clone, Copy)]
enum Scalar<'de> {
    Null,
    Boolean(bool),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Bytes(&'de [u8]),
    Str(&'de str),
    Uuid(UuidText<'de>),
}

/// A UUID: its text when it is already in the canonical form apache-avro
/// prints (lowercase, hyphenated), else the parsed value.
#[derive(Debug, Clone, Copy)]
enum UuidText<'de> {
    Canonical(&'de str),
    Parsed(Uuid),
}

impl UuidText<'_> {
    /// Calls `f` with the canonical text.
    fn with_text<R>(self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            UuidText::Canonical(text) => f(text),
            UuidText::Parsed(uuid) => {
                let mut buffer = Uuid::encode_buffer();
                f(uuid.hyphenated().encode_lower(&mut buffer))
            }
        }
    }

    fn bytes(self) -> [u8; 16] {
        match self {
            UuidText::Canonical(text) => Uuid::parse_str(text).map(Uuid::into_bytes),
            UuidText::Parsed(uuid) => Ok(uuid.into_bytes()),
        }
        .unwrap_or_default()
    }
}

/// Whether `text` is a UUID as `Uuid::to_string` prints it.
fn is_canonical_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(b),
        })
}

fn parse_uuid(text: &str) -> Result<UuidText<'_>, String> {
    if is_canonical_uuid(text) {
        Ok(UuidText::Canonical(text))
    } else {
        Uuid::parse_str(text)
            .map(UuidText::Parsed)
            .map_err(|e| e.to_string())
    }
}

/// Reads a leaf, with the checks apache-avro makes when it decodes one.
#[inline]
fn read_leaf<'de>(leaf: Leaf, cursor: &mut Cursor<'de>) -> Result<Scalar<'de>, Error> {
    Ok(match leaf {
        Leaf::Null => Scalar::Null,
        Leaf::Boolean => Scalar::Boolean(cursor.boolean()?),
        Leaf::Int => Scalar::Int(cursor.int()?),
        Leaf::Long => Scalar::Long(cursor.long()?),
        Leaf::Float => Scalar::Float(cursor.float()?),
        Leaf::Double => Scalar::Double(cursor.double()?),
        Leaf::Bytes => Scalar::Bytes(cursor.bytes()?),
        Leaf::String => Scalar::Str(cursor.string()?),
        Leaf::Fixed(size) => Scalar::Bytes(cursor.take(size)?),
        Leaf::UuidString => {
            let text = cursor.string()?;
            Scalar::Uuid(
                parse_uuid(text)
                    .map_err(|e| Error::malformed(format!("a UUID does not parse ({e})")))?,
            )
        }
        Leaf::UuidBytes => {
            Scalar::Uuid(uuid_from_bytes(cursor.bytes()?).map_err(Error::malformed)?)
        }
        Leaf::UuidFixed(size) => {
            let bytes = cursor.take(size)?;
            Scalar::Uuid(uuid_from_bytes(bytes).map_err(Error::malformed)?)
        }
        Leaf::Duration(size) => {
            if size != 12 {
                return Err(Error::malformed(format!(
                    "a duration is a fixed of {size} bytes, not 12"
                )));
            }
            Scalar::Bytes(cursor.take(12)?)
        }
        Leaf::BigDecimal => {
            let bytes = cursor.bytes()?;
            // Rare enough to check with apache-avro itself, for its verdict.
            if let Err(e) = Value::Bytes(bytes.to_vec()).resolve(&Schema::BigDecimal) {
                let message = e.to_string();
                return Err(Error::new(Stage::Decode, classify(&message), message));
            }
            Scalar::Bytes(bytes)
        }
    })
}

fn uuid_from_bytes(bytes: &[u8]) -> Result<UuidText<'static>, String> {
    Uuid::from_slice(bytes)
        .map(UuidText::Parsed)
        .map_err(|e| format!("a UUID is {} bytes, not 16 ({e})", bytes.len()))
}

/// A value as the reader sees it, ready for a visitor.
#[derive(Debug, Clone, Copy)]
enum Out<'de> {
    Null,
    Boolean(bool),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Str(&'de str),
    Enum(&'de str),
    Bytes(&'de [u8]),
    Uuid(UuidText<'de>),
}

/// The special float strings apache-avro resolves into a float or double.
fn special_float(text: &str) -> Option<f32> {
    match text {
        "NaN" => Some(f32::NAN),
        "INF" | "Infinity" => Some(f32::INFINITY),
        "-INF" | "-Infinity" => Some(f32::NEG_INFINITY),
        _ => None,
    }
}

/// The fault of a string the reader cannot take: apache-avro printed the
/// string in its message, which decided the reason.
fn string_fault(text: &str, message: String) -> Error {
    let reason = if mentions(&format!("{text:?}")) {
        Reason::InvalidEnum
    } else {
        Reason::InvalidAvro
    };
    Error::unresolvable(reason, message)
}

/// Converts a leaf as the reader's type takes it.
#[inline]
fn convert(conv: Conv, scalar: Scalar<'_>) -> Result<Out<'_>, Error> {
    Ok(match (conv, scalar) {
        (Conv::Null, _) => Out::Null,
        (Conv::Boolean, Scalar::Boolean(b)) => Out::Boolean(b),
        (Conv::Int, Scalar::Int(n)) => Out::Int(n),
        (Conv::LongToInt, Scalar::Long(n)) => Out::Int(i32::try_from(n).map_err(|_| {
            Error::unresolvable(
                Reason::InvalidAvro,
                format!("the long {n} does not fit the reader's int"),
            )
        })?),
        (Conv::IntToLong, Scalar::Int(n)) => Out::Long(i64::from(n)),
        (Conv::Long, Scalar::Long(n)) => Out::Long(n),
        (Conv::IntToFloat, Scalar::Int(n)) => Out::Float(n as f32),
        (Conv::LongToFloat, Scalar::Long(n)) => Out::Float(n as f32),
        (Conv::Float, Scalar::Float(x)) => Out::Float(x),
        (Conv::DoubleToFloat, Scalar::Double(x)) => Out::Float(x as f32),
        (Conv::StringToFloat, Scalar::Str(s)) => Out::Float(special_float(s).ok_or_else(|| {
            string_fault(s, format!("the string {s:?} cannot be read as a float"))
        })?),
        (Conv::IntToDouble, Scalar::Int(n)) => Out::Double(f64::from(n)),
        (Conv::LongToDouble, Scalar::Long(n)) => Out::Double(n as f64),
        (Conv::FloatToDouble, Scalar::Float(x)) => Out::Double(f64::from(x)),
        (Conv::Double, Scalar::Double(x)) => Out::Double(x),
        (Conv::StringToDouble, Scalar::Str(s)) => {
            Out::Double(f64::from(special_float(s).ok_or_else(|| {
                string_fault(s, format!("the string {s:?} cannot be read as a double"))
            })?))
        }
        (Conv::Bytes | Conv::Fixed, Scalar::Bytes(b)) => Out::Bytes(b),
        (Conv::StringToBytes | Conv::StringToFixed, Scalar::Str(s)) => Out::Bytes(s.as_bytes()),
        (Conv::String, Scalar::Str(s)) => Out::Str(s),
        (Conv::BytesToString, Scalar::Bytes(b)) => {
            Out::Str(std::str::from_utf8(b).map_err(|e| {
                Error::unresolvable(
                    Reason::InvalidAvro,
                    format!("bytes are not valid UTF-8 for the reader's string ({e})"),
                )
            })?)
        }
        (Conv::BytesToFixed(size), Scalar::Bytes(b)) => {
            if b.len() != size {
                return Err(Error::unresolvable(
                    Reason::InvalidAvro,
                    format!(
                        "{} bytes cannot be read as the reader's fixed of {size} bytes",
                        b.len()
                    ),
                ));
            }
            Out::Bytes(b)
        }
        (Conv::Uuid, Scalar::Uuid(u)) => Out::Uuid(u),
        (Conv::StringToUuid, Scalar::Str(s)) => Out::Uuid(parse_uuid(s).map_err(|e| {
            Error::unresolvable(
                Reason::InvalidAvro,
                format!("the string cannot be read as the reader's UUID ({e})"),
            )
        })?),
        (Conv::BytesToUuid | Conv::FixedToUuid, Scalar::Bytes(b)) => {
            Out::Uuid(uuid_from_bytes(b).map_err(|e| Error::unresolvable(Reason::InvalidAvro, e))?)
        }
        (Conv::StringToUuidFixed, Scalar::Str(s)) => Out::Uuid(
            uuid_from_bytes(s.as_bytes())
                .map_err(|e| Error::unresolvable(Reason::InvalidAvro, e))?,
        ),
        (conv, scalar) => {
            return Err(Error::unresolvable(
                Reason::Incompatible,
                format!("the decoder's plan ({conv:?}) does not match the value read ({scalar:?})"),
            ))
        }
    })
}

/// Reads a union's branch index.
#[inline]
fn branch<T: Copy>(cursor: &mut Cursor<'_>, branches: &[T]) -> Result<T, Error> {
    let index = cursor.long()?;
    let Ok(position) = usize::try_from(index) else {
        return Err(Error::malformed(format!(
            "a union branch index is negative ({index})"
        )));
    };
    branches.get(position).copied().ok_or_else(|| {
        Error::bad_index(format!(
            "union branch {index} is out of range: the union has {} branches",
            branches.len()
        ))
    })
}

/// Reads an enum index, which must be one of `symbols`.
#[inline]
fn enum_index(cursor: &mut Cursor<'_>, symbols: usize) -> Result<usize, Error> {
    let index = cursor.int()?;
    let Ok(position) = usize::try_from(index) else {
        return Err(Error::malformed(format!(
            "an enum index is negative ({index})"
        )));
    };
    if position >= symbols {
        return Err(Error::bad_index(format!(
            "enum index {index} is out of range: the enum has {symbols} symbols"
        )));
    }
    Ok(position)
}

impl EnumPlan {
    /// The reader symbol of writer symbol `index`.
    #[inline]
    fn symbol(&self, index: usize) -> Result<&str, Error> {
        match self.to_reader.get(index).copied().flatten() {
            Some(reader) => Ok(self
                .reader_symbols
                .get(reader as usize)
                .map_or("", String::as_str)),
            None => Err(Error::unresolvable(
                Reason::InvalidEnum,
                format!(
                    "symbol `{}` is not in the reader's enum {}, which has no default",
                    self.writer_symbols.get(index).map_or("", String::as_str),
                    self.name
                ),
            )),
        }
    }
}

impl EnumFromString {
    /// The reader symbol the string `text` names.
    fn symbol(&self, text: &str) -> Result<&str, Error> {
        let found = self
            .symbols
            .iter()
            .position(|s| s == text)
            .or(self.default.map(|d| d as usize));
        match found.and_then(|i| self.symbols.get(i)) {
            Some(symbol) => Ok(symbol),
            None => Err(Error::unresolvable(
                Reason::InvalidEnum,
                format!(
                    "the string {text:?} is not a symbol of the reader's enum {}, which has no default",
                    self.name
                ),
            )),
        }
    }
}

impl Failure {
    /// Reads the writer value that the reader cannot take, and gives the fault.
    fn read(&self, plan: &Plan, cursor: &mut Cursor<'_>, depth: u32) -> Result<Error, Error> {
        let mut reason = self.fault.reason;
        if self.text_in_reason {
            let text = cursor.string()?;
            if mentions(&format!("{text:?}")) {
                reason = Reason::InvalidEnum;
            }
        } else {
            skip(plan, self.writer, cursor, depth)?;
        }
        Ok(Error::unresolvable(reason, self.fault.message.clone()))
    }
}

fn too_deep(depth: u32) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        Err(Error::malformed(format!(
            "values are nested more than {MAX_DEPTH} levels deep"
        )))
    } else {
        Ok(())
    }
}

/// Reads a writer value to drop it, with every check of its decoding.
pub(crate) fn skip(
    plan: &Plan,
    skip_id: SkipId,
    cursor: &mut Cursor<'_>,
    depth: u32,
) -> Result<(), Error> {
    too_deep(depth)?;
    match plan.skips.get(skip_id as usize) {
        Some(Skip::Leaf(leaf)) => read_leaf(*leaf, cursor).map(drop),
        Some(Skip::Enum { symbols }) => enum_index(cursor, *symbols).map(drop),
        Some(Skip::Array { items, empty_items }) => {
            let mut total = 0usize;
            while let Some(count) = cursor.block()? {
                total = counted(cursor, total, count, size_of::<Value>())?;
                if !*empty_items {
                    for n in 0..count {
                        skip(plan, *items, cursor, depth + 1)
                            .map_err(|e| e.at(format!("[{n}]")))?;
                    }
                }
            }
            Ok(())
        }
        Some(Skip::Map(values)) => {
            let mut total = 0usize;
            while let Some(count) = cursor.block()? {
                total = counted(cursor, total, count, size_of::<(String, Value)>())?;
                for _ in 0..count {
                    let key = cursor.string()?;
                    skip(plan, *values, cursor, depth + 1)
                        .map_err(|e| e.at(format!("[{key:?}]")))?;
                }
            }
            Ok(())
        }
        Some(Skip::Union(branches)) => {
            let chosen = branch(cursor, branches)?;
            skip(plan, chosen, cursor, depth + 1)
        }
        Some(Skip::Record(fields)) => {
            for (name, field) in fields.iter() {
                skip(plan, *field, cursor, depth + 1).map_err(|e| e.at(&**name))?;
            }
            Ok(())
        }
        Some(Skip::Pending) | None => Err(plan_broken()),
    }
}

#[cold]
fn plan_broken() -> Error {
    Error::unresolvable(
        Reason::Incompatible,
        "the decoder's plan refers to a step it does not have",
    )
}

/// Adds a block's count to a collection's total, within apache-avro's limit.
fn counted(
    cursor: &Cursor<'_>,
    total: usize,
    count: usize,
    item_size: usize,
) -> Result<usize, Error> {
    let total = total
        .checked_add(count)
        .ok_or_else(|| Error::malformed("a collection's item count overflows"))?;
    cursor.limits().collection(total, item_size)?;
    Ok(total)
}

/// Walks a value as the deserializer reads it, without filling anything: a
/// malformed body stops the walk (`Err`); a value the reader cannot take is
/// noted and the walk goes on to the end of the value. Gives the first such
/// fault, in reader field order within a record, as apache-avro resolved.
pub(crate) fn check(
    plan: &Plan,
    node: NodeId,
    cursor: &mut Cursor<'_>,
    depth: u32,
) -> Result<Option<Error>, Error> {
    too_deep(depth)?;
    let Some(step) = plan.nodes.get(node as usize) else {
        return Err(plan_broken());
    };
    Ok(match step {
        Node::Leaf { leaf, conv } => convert(*conv, read_leaf(*leaf, cursor)?).err(),
        Node::Enum(e) => {
            let index = enum_index(cursor, e.writer_symbols.len())?;
            e.symbol(index).err()
        }
        Node::EnumFromString(e) => {
            let text = cursor.string()?;
            e.symbol(text).err()
        }
        Node::Record(record) => {
            let mut first: Option<(u32, Error)> =
                record.fail.as_ref().map(|(at, fault)| (*at, fault.error()));
            for step in record.steps.iter() {
                match step.kind {
                    StepKind::Skip(w) => {
                        skip(plan, w, cursor, depth + 1).map_err(|e| e.at(&*step.name))?;
                    }
                    StepKind::Field { node, position } => {
                        let found =
                            check(plan, node, cursor, depth + 1).map_err(|e| e.at(&*step.name))?;
                        if let Some(fault) = found {
                            if first.as_ref().is_none_or(|(at, _)| position < *at) {
                                first = Some((position, fault.at(&*step.name)));
                            }
                        }
                    }
                }
            }
            first.map(|(_, fault)| fault)
        }
        Node::Array { items } => {
            let mut first = None;
            let mut total = 0usize;
            while let Some(count) = cursor.block()? {
                total = counted(cursor, total, count, size_of::<Value>())?;
                for n in 0..count {
                    let found = check(plan, *items, cursor, depth + 1)
                        .map_err(|e| e.at(format!("[{n}]")))?;
                    if first.is_none() {
                        first = found.map(|f| f.at(format!("[{n}]")));
                    }
                }
            }
            first
        }
        Node::Map { values, .. } => {
            // Only the last value of a repeated key was resolved.
            let mut faults: Vec<(&str, Error)> = Vec::new();
            let mut total = 0usize;
            while let Some(count) = cursor.block()? {
                total = counted(cursor, total, count, size_of::<(String, Value)>())?;
                for _ in 0..count {
                    let key = cursor.string()?;
                    let found = check(plan, *values, cursor, depth + 1)
                        .map_err(|e| e.at(format!("[{key:?}]")))?;
                    faults.retain(|(k, _)| *k != key);
                    if let Some(fault) = found {
                        faults.push((key, fault.at(format!("[{key:?}]"))));
                    }
                }
            }
            faults.into_iter().next().map(|(_, fault)| fault)
        }
        Node::WriterUnion(branches) => {
            let chosen = branch(cursor, branches)?;
            check(plan, chosen, cursor, depth + 1)?
        }
        Node::ReaderUnion { value, .. } => check(plan, *value, cursor, depth + 1)?,
        Node::Select(select) => match choose(plan, select, cursor, depth)? {
            Some(chosen) => check(plan, chosen, cursor, depth + 1)?,
            None => Some(select.failure.read(plan, cursor, depth + 1)?),
        },
        Node::Fail(failure) => Some(failure.read(plan, cursor, depth + 1)?),
        Node::Pending => return Err(plan_broken()),
    })
}

/// The reader union branch a value resolves into, tried on a copy of the
/// cursor when the plan could not tell: the branch of the value's own kind,
/// the first named branch it resolves into (the lower of the two), else the
/// first branch it resolves into.
fn choose(
    plan: &Plan,
    select: &Select,
    cursor: &Cursor<'_>,
    depth: u32,
) -> Result<Option<NodeId>, Error> {
    let fits = |candidate: &super::plan::Candidate| -> Result<bool, Error> {
        match candidate.outcome {
            Outcome::Sure => Ok(true),
            Outcome::Never => Ok(false),
            Outcome::Maybe => {
                let mut probe = *cursor;
                Ok(check(plan, candidate.value, &mut probe, depth + 1)?.is_none())
            }
        }
    };
    let unnamed = match &select.unnamed {
        Some(c) if !select.unnamed_checked || fits(c)? => Some(c),
        _ => None,
    };
    let mut named = None;
    for c in select.named.iter() {
        if fits(c)? {
            named = Some(c);
            break;
        }
    }
    let chosen = match (unnamed, named) {
        (Some(u), Some(n)) if u.index < n.index => Some(u),
        (Some(_), Some(n)) => Some(n),
        (Some(u), None) => Some(u),
        (None, Some(n)) => Some(n),
        (None, None) => {
            let mut found = None;
            for c in select.any.iter() {
                if fits(c)? {
                    found = Some(c);
                    break;
                }
            }
            found
        }
    };
    Ok(chosen.map(|c| c.node))
}

/// The serde deserializer of one value of the plan.
pub(crate) struct Reader<'a, 'de> {
    plan: &'de Plan,
    node: NodeId,
    cursor: &'a mut Cursor<'de>,
    depth: u32,
}

/// A value as far as the reader's type goes: a leaf already read and
/// converted, or a compound value whose contents are still to be read.
enum Reached<'de> {
    Out(Out<'de>),
    Record(&'de RecordPlan),
    Array(NodeId),
    Map {
        values: NodeId,
        may_fail: bool,
    },
    /// A branch of the reader's union.
    Union {
        null: bool,
        value: NodeId,
    },
}

impl<'a, 'de> Reader<'a, 'de> {
    pub(crate) fn new(
        plan: &'de Plan,
        node: NodeId,
        cursor: &'a mut Cursor<'de>,
        depth: u32,
    ) -> Self {
        Reader {
            plan,
            node,
            cursor,
            depth,
        }
    }

    /// The reader of another node at the same place, one level deeper.
    fn inner(self, node: NodeId) -> Result<Self, Error> {
        too_deep(self.depth + 1)?;
        Ok(Reader {
            plan: self.plan,
            node,
            cursor: self.cursor,
            depth: self.depth + 1,
        })
    }

    /// Follows writer union branches and reads leaves, up to what the
    /// reader's type sees.
    #[inline]
    fn reach(&mut self) -> Result<Reached<'de>, Error> {
        let mut node = self.node;
        loop {
            let Some(step) = self.plan.nodes.get(node as usize) else {
                return Err(plan_broken());
            };
            match step {
                Node::Leaf { leaf, conv } => {
                    return Ok(Reached::Out(convert(
                        *conv,
                        read_leaf(*leaf, self.cursor)?,
                    )?))
                }
                Node::Enum(e) => {
                    let index = enum_index(self.cursor, e.writer_symbols.len())?;
                    return Ok(Reached::Out(Out::Enum(e.symbol(index)?)));
                }
                Node::EnumFromString(e) => {
                    let text = self.cursor.string()?;
                    return Ok(Reached::Out(Out::Enum(e.symbol(text)?)));
                }
                Node::Record(record) => {
                    if let Some((_, fault)) = &record.fail {
                        return Err(fault.error());
                    }
                    return Ok(Reached::Record(record));
                }
                Node::Array { items } => return Ok(Reached::Array(*items)),
                Node::Map {
                    values,
                    values_may_fail,
                } => {
                    return Ok(Reached::Map {
                        values: *values,
                        may_fail: *values_may_fail,
                    })
                }
                Node::WriterUnion(branches) => node = branch(self.cursor, branches)?,
                Node::ReaderUnion { value, null, .. } => {
                    return Ok(Reached::Union {
                        null: *null,
                        value: *value,
                    })
                }
                Node::Select(select) => match choose(self.plan, select, self.cursor, self.depth)? {
                    Some(chosen) => node = chosen,
                    None => return Err(select.failure.fault.error()),
                },
                Node::Fail(failure) => return Err(failure.fault.error()),
                Node::Pending => return Err(plan_broken()),
            }
        }
    }

    fn record<V: Visitor<'de>>(
        self,
        record: &'de RecordPlan,
        visitor: V,
    ) -> Result<V::Value, Error> {
        too_deep(self.depth + 1)?;
        let mut access = Fields {
            plan: self.plan,
            record,
            cursor: self.cursor,
            depth: self.depth + 1,
            step: 0,
            default: 0,
            pending: Pending::None,
        };
        let value = visitor.visit_map(&mut access)?;
        // Serde's derived visitors read every field; this is for any that stop early.
        while access.next_key::<IgnoredAny>()?.is_some() {
            access.next_value::<IgnoredAny>()?;
        }
        Ok(value)
    }

    fn map<V: Visitor<'de>>(
        self,
        values: NodeId,
        may_fail: bool,
        visitor: V,
    ) -> Result<V::Value, Error> {
        too_deep(self.depth + 1)?;
        let mut access = Entries::start(self.plan, values, may_fail, self.cursor, self.depth + 1)?;
        let value = visitor.visit_map(&mut access)?;
        while access.next_key::<IgnoredAny>()?.is_some() {
            access.next_value::<IgnoredAny>()?;
        }
        Ok(value)
    }

    fn array<V: Visitor<'de>>(self, items: NodeId, visitor: V) -> Result<V::Value, Error> {
        too_deep(self.depth + 1)?;
        let mut access = Items::start(self.plan, items, self.cursor, self.depth + 1)?;
        let value = visitor.visit_seq(&mut access)?;
        while access.next_element::<IgnoredAny>()?.is_some() {}
        Ok(value)
    }
}

/// The error for a value a method of the record type does not take, worded as
/// apache-avro's.
#[cold]
fn expected(what: &str, got: &Reached<'_>) -> Error {
    let got = match got {
        Reached::Out(out) => format!("{out:?}"),
        Reached::Record(_) => "a record".to_owned(),
        Reached::Array(_) => "an array".to_owned(),
        Reached::Map { .. } => "a map".to_owned(),
        Reached::Union { .. } => "a union".to_owned(),
    };
    serde::de::Error::custom(format!("expected {what}, but got {got}"))
}

fn visit_any<'de, V: Visitor<'de>>(out: Out<'de>, visitor: V) -> Result<V::Value, Error> {
    match out {
        Out::Null => visitor.visit_unit(),
        Out::Boolean(b) => visitor.visit_bool(b),
        Out::Int(n) => visitor.visit_i32(n),
        Out::Long(n) => visitor.visit_i64(n),
        Out::Float(x) => visitor.visit_f32(x),
        Out::Double(x) => visitor.visit_f64(x),
        Out::Str(s) | Out::Enum(s) => visitor.visit_borrowed_str(s),
        Out::Bytes(b) => visitor.visit_bytes(b),
        Out::Uuid(u) => u.with_text(|text| visitor.visit_str(text)),
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(bytes).map_err(|e| serde::de::Error::custom(e.to_string()))
}

impl<'de> Deserializer<'de> for Reader<'_, 'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        match self.reach()? {
            Reached::Out(out) => visit_any(out, visitor),
            Reached::Record(record) => self.record(record, visitor),
            Reached::Array(items) => self.array(items, visitor),
            Reached::Map { values, may_fail } => self.map(values, may_fail, visitor),
            Reached::Union { value, .. } => self.inner(value)?.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        match self.reach()? {
            Reached::Union { null: true, .. } => visitor.visit_none(),
            Reached::Union { value, .. } => visitor.visit_some(self.inner(value)?),
            other => Err(expected("a union", &other)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        match self.reach()? {
            Reached::Out(Out::Str(s) | Out::Enum(s)) => visitor.visit_borrowed_str(s),
            Reached::Out(Out::Bytes(b)) => visitor.visit_str(utf8(b)?),
            Reached::Out(Out::Uuid(u)) => u.with_text(|text| visitor.visit_str(text)),
            Reached::Union { value, .. } => self.inner(value)?.deserialize_string(visitor),
            other => Err(expected(
                "a string, bytes, a fixed, a UUID or an enum",
                &other,
            )),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        match self.reach()? {
            Reached::Out(Out::Str(s)) => visitor.visit_borrowed_str(s),
            Reached::Out(Out::Bytes(b)) => visitor.visit_borrowed_str(utf8(b)?),
            Reached::Out(Out::Uuid(u)) => u.with_text(|text| visitor.visit_str(text)),
            Reached::Union { value, .. } => self.inner(value)?.deserialize_str(visitor),
            other => Err(expected("a string, bytes, a fixed or a UUID", &other)),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        match self.reach()? {
            Reached::Out(Out::Str(s)) => visitor.visit_bytes(s.as_bytes()),
            Reached::Out(Out::Bytes(b)) => visitor.visit_bytes(b),
            Reached::Out(Out::Uuid(u)) => visitor.visit_bytes(&u.bytes()),
            other => Err(expected("a string, bytes, a fixed or a UUID", &other)),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_unit<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        match self.reach()? {
            Reached::Out(Out::Null) => visitor.visit_unit(),
            Reached::Union { value, .. } => self.inner(value)?.deserialize_unit(visitor),
            other => Err(expected("a null or a union", &other)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        match self.reach()? {
            Reached::Array(items) => self.array(items, visitor),
            Reached::Union { null: true, .. } => visitor.visit_seq(Nothing),
            Reached::Union { value, .. } => {
                let mut inner = self.inner(value)?;
                match inner.reach()? {
                    Reached::Array(items) => inner.array(items, visitor),
                    other => Err(expected("an array or a null", &other)),
                }
            }
            other => Err(expected("an array or a union", &other)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        match self.reach()? {
            Reached::Map { values, may_fail } => self.map(values, may_fail, visitor),
            Reached::Record(record) => self.record(record, visitor),
            other => Err(expected("a record or a map", &other)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.reach()? {
            Reached::Record(record) => self.record(record, visitor),
            Reached::Union { null: true, .. } => visitor.visit_map(Nothing),
            Reached::Union { value, .. } => {
                let mut inner = self.inner(value)?;
                match inner.reach()? {
                    Reached::Record(record) => inner.record(record, visitor),
                    other => Err(expected("a record or a null", &other)),
                }
            }
            other => Err(expected("a record or a union", &other)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.reach()? {
            Reached::Out(Out::Str(s) | Out::Enum(s)) => visitor.visit_enum(s.into_deserializer()),
            other => Err(expected("an enum or a string", &other)),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        match self.reach()? {
            Reached::Out(Out::Int(n)) => visitor
                .visit_u64(u64::try_from(n).map_err(|e| serde::de::Error::custom(e.to_string()))?),
            Reached::Out(Out::Long(n)) => visitor
                .visit_u64(u64::try_from(n).map_err(|e| serde::de::Error::custom(e.to_string()))?),
            Reached::Union { value, .. } => self.inner(value)?.deserialize_u64(visitor),
            other => Err(expected("an int or a long", &other)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_any(visitor)
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u128 f32 f64 char
    }
}

/// The field being read.
enum Pending<'de> {
    None,
    Field(NodeId, &'de str),
    Default(&'de DefaultField),
}

/// The fields of a record: the writer's in order (its writer-only fields read
/// and dropped on the way), then the reader-only fields' defaults.
struct Fields<'a, 'de> {
    plan: &'de Plan,
    record: &'de RecordPlan,
    cursor: &'a mut Cursor<'de>,
    depth: u32,
    step: usize,
    default: usize,
    pending: Pending<'de>,
}

impl<'de> MapAccess<'de> for Fields<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        while let Some(step) = self.record.steps.get(self.step) {
            self.step += 1;
            match step.kind {
                StepKind::Skip(writer) => {
                    skip(self.plan, writer, self.cursor, self.depth)
                        .map_err(|e| e.at(&*step.name))?;
                }
                StepKind::Field { node, .. } => {
                    self.pending = Pending::Field(node, &step.name);
                    return seed
                        .deserialize(BorrowedStrDeserializer::new(&step.name))
                        .map(Some);
                }
            }
        }
        if let Some(default) = self.record.defaults.get(self.default) {
            self.default += 1;
            self.pending = Pending::Default(default);
            return seed
                .deserialize(BorrowedStrDeserializer::new(&default.name))
                .map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::Field(node, name) => seed
                .deserialize(Reader::new(self.plan, node, self.cursor, self.depth))
                .map_err(|e| e.at(name)),
            Pending::Default(default) => {
                let mut cursor = Cursor::new(&default.bytes, self.cursor.limits());
                seed.deserialize(Reader::new(
                    self.plan,
                    default.node,
                    &mut cursor,
                    self.depth,
                ))
                .map_err(|e| e.at(&*default.name))
            }
            Pending::None => Err(serde::de::Error::custom(
                "a record's value was asked for before its field",
            )),
        }
    }
}

/// The entries of a map, block by block.
struct Entries<'a, 'de> {
    plan: &'de Plan,
    values: NodeId,
    may_fail: bool,
    cursor: &'a mut Cursor<'de>,
    depth: u32,
    /// Entries left in the current block.
    left: usize,
    total: usize,
    done: bool,
    key: &'de str,
}

impl<'a, 'de> Entries<'a, 'de> {
    fn start(
        plan: &'de Plan,
        values: NodeId,
        may_fail: bool,
        cursor: &'a mut Cursor<'de>,
        depth: u32,
    ) -> Result<Self, Error> {
        let mut entries = Entries {
            plan,
            values,
            may_fail,
            cursor,
            depth,
            left: 0,
            total: 0,
            done: false,
            key: "",
        };
        entries.next_block()?;
        Ok(entries)
    }

    fn next_block(&mut self) -> Result<(), Error> {
        match self.cursor.block()? {
            None => self.done = true,
            Some(count) => {
                self.total = counted(self.cursor, self.total, count, size_of::<(String, Value)>())?;
                self.left = count;
            }
        }
        Ok(())
    }

    /// When the value at the cursor does not resolve and its key comes again
    /// later in the map: the cursor moved past the value, and a cursor at the
    /// key's last value. The rest of the map is read on a copy, so a
    /// malformed part of it is reported first, as apache-avro decoded the
    /// whole map before resolving it.
    #[cold]
    fn superseding(&mut self) -> Result<Option<Cursor<'de>>, Error> {
        let mut probe = *self.cursor;
        if check(self.plan, self.values, &mut probe, self.depth)?.is_none() {
            return Ok(None);
        }
        let after = probe;
        let mut last = None;
        let (mut left, mut total) = (self.left, self.total);
        loop {
            while left == 0 {
                match probe.block()? {
                    None => {
                        if last.is_some() {
                            *self.cursor = after;
                        }
                        return Ok(last);
                    }
                    Some(count) => {
                        total = counted(&probe, total, count, size_of::<(String, Value)>())?;
                        left = count;
                    }
                }
            }
            left -= 1;
            let key = probe.string()?;
            if key == self.key {
                last = Some(probe);
            }
            check(self.plan, self.values, &mut probe, self.depth)?;
        }
    }
}

impl<'de> MapAccess<'de> for Entries<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        while self.left == 0 {
            if self.done {
                return Ok(None);
            }
            self.next_block()?;
        }
        self.left -= 1;
        self.key = self.cursor.string()?;
        seed.deserialize(BorrowedStrDeserializer::new(self.key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let key = self.key;
        if self.may_fail {
            if let Some(mut last) = self.superseding()? {
                // The value does not resolve, but a later entry of the same
                // key replaces it: the record gets that entry's value (read
                // again when its turn comes), as the decoded map held it.
                return seed
                    .deserialize(Reader::new(self.plan, self.values, &mut last, self.depth))
                    .map_err(|e| e.at(format!("[{key:?}]")));
            }
        }
        seed.deserialize(Reader::new(self.plan, self.values, self.cursor, self.depth))
            .map_err(|e| e.at(format!("[{key:?}]")))
    }

    fn size_hint(&self) -> Option<usize> {
        // Each entry takes at least a byte: a count is never trusted further.
        Some(self.left.min(self.cursor.remaining()))
    }
}

/// The items of an array, block by block.
struct Items<'a, 'de> {
    plan: &'de Plan,
    items: NodeId,
    cursor: &'a mut Cursor<'de>,
    depth: u32,
    left: usize,
    total: usize,
    done: bool,
}

impl<'a, 'de> Items<'a, 'de> {
    fn start(
        plan: &'de Plan,
        items: NodeId,
        cursor: &'a mut Cursor<'de>,
        depth: u32,
    ) -> Result<Self, Error> {
        let mut access = Items {
            plan,
            items,
            cursor,
            depth,
            left: 0,
            total: 0,
            done: false,
        };
        access.next_block()?;
        Ok(access)
    }

    fn next_block(&mut self) -> Result<(), Error> {
        match self.cursor.block()? {
            None => self.done = true,
            Some(count) => {
                self.total = counted(self.cursor, self.total, count, size_of::<Value>())?;
                self.left = count;
            }
        }
        Ok(())
    }
}

impl<'de> SeqAccess<'de> for Items<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        while self.left == 0 {
            if self.done {
                return Ok(None);
            }
            self.next_block()?;
        }
        self.left -= 1;
        let n = self.total - self.left - 1;
        seed.deserialize(Reader::new(self.plan, self.items, self.cursor, self.depth))
            .map(Some)
            .map_err(|e| e.at(format!("[{n}]")))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left.min(self.cursor.remaining()))
    }
}

/// An empty record, map or array: the null branch of a union read as one.
struct Nothing;

impl<'de> MapAccess<'de> for Nothing {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        _seed: K,
    ) -> Result<Option<K::Value>, Error> {
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, _seed: V) -> Result<V::Value, Error> {
        Err(serde::de::Error::custom("an empty record has no values"))
    }
}

impl<'de> SeqAccess<'de> for Nothing {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        _seed: T,
    ) -> Result<Option<T::Value>, Error> {
        Ok(None)
    }
}
