//! Reading an Avro binary body: a cursor over its bytes, and the faults that
//! reading, resolving and filling a record can meet.
//!
//! Every read checks that the bytes it needs remain before it takes them, so a
//! hostile length or count never allocates: a string or bytes value is a
//! slice of the body, and the lengths and collection counts that apache-avro
//! refuses to allocate for (over `apache_avro::util::max_allocation_bytes`)
//! are refused here too, with the same reason.

use std::fmt;

/// The dead-letter reason a fault comes out as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The body ends before the value does.
    Truncated,
    /// An enum symbol or union branch the schemas do not allow.
    InvalidEnum,
    /// Any other malformed or unresolvable value.
    InvalidAvro,
    /// The value does not fit the record type (or the decoder cannot resolve it).
    Incompatible,
}

/// Where a fault was met, in the order that decides which one a message is
/// dead-lettered for: a malformed body first, then a value the reader schema
/// cannot take, then a record the Rust type cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Reading the bytes as the writer schema says.
    Decode,
    /// Resolving the writer's value into the reader schema.
    Resolve,
    /// Filling the record type (a serde error).
    Record,
}

/// A fault, with the path of fields it was met in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    /// Where it was met.
    pub(crate) stage: Stage,
    /// The dead-letter reason it comes out as.
    pub(crate) reason: Reason,
    /// What went wrong, without the path.
    pub(crate) message: String,
    /// Innermost first: the field, map key or item each enclosing value adds.
    path: Vec<String>,
}

impl Fault {
    /// The path of fields, outermost first, e.g. `user.email`.
    pub(crate) fn path(&self) -> String {
        let mut path = String::new();
        for segment in self.path.iter().rev() {
            if !path.is_empty() && !segment.starts_with('[') {
                path.push('.');
            }
            path.push_str(segment);
        }
        path
    }

    /// The message with the path of fields in front, when there is one.
    pub(crate) fn describe(&self) -> String {
        if self.path.is_empty() {
            self.message.clone()
        } else {
            format!("field `{}`: {}", self.path(), self.message)
        }
    }
}

/// The error of the plan's deserializer and readers: a boxed [`Fault`], so that
/// results stay one word wide on the hot path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Error(pub(crate) Box<Fault>);

impl Error {
    /// A fault of `stage`, given as `reason`.
    pub(crate) fn new(stage: Stage, reason: Reason, message: impl Into<String>) -> Self {
        Error(Box::new(Fault {
            stage,
            reason,
            message: message.into(),
            path: Vec::new(),
        }))
    }

    /// The body ends before the value does.
    pub(crate) fn truncated(message: impl Into<String>) -> Self {
        Error::new(Stage::Decode, Reason::Truncated, message)
    }

    /// The bytes are not a value of the writer schema.
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Error::new(Stage::Decode, Reason::InvalidAvro, message)
    }

    /// An enum index or union branch out of the writer schema's range.
    pub(crate) fn bad_index(message: impl Into<String>) -> Self {
        Error::new(Stage::Decode, Reason::InvalidEnum, message)
    }

    /// The writer's value cannot be resolved into the reader schema.
    pub(crate) fn unresolvable(reason: Reason, message: impl Into<String>) -> Self {
        Error::new(Stage::Resolve, reason, message)
    }

    /// Adds the enclosing field (or `[key]`) to the path.
    #[cold]
    pub(crate) fn at(mut self, segment: impl Into<String>) -> Self {
        self.0.path.push(segment.into());
        self
    }

    /// Where the fault was met.
    pub(crate) fn stage(&self) -> Stage {
        self.0.stage
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.describe())
    }
}

impl std::error::Error for Error {}

impl serde::de::Error for Error {
    #[cold]
    fn custom<T: fmt::Display>(message: T) -> Self {
        Error::new(Stage::Record, Reason::Incompatible, message.to_string())
    }
}

/// Limits apache-avro applies while decoding, which decide whether a huge
/// length or count is malformed (over the limit) or truncated (within it, but
/// past the end of the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// `apache_avro::util::max_allocation_bytes`.
    pub(crate) max_bytes: usize,
}

impl Limits {
    /// The limits apache-avro is configured with in this process.
    pub(crate) fn of_apache_avro() -> Self {
        Limits {
            max_bytes: apache_avro::util::max_allocation_bytes(
                apache_avro::util::DEFAULT_MAX_ALLOCATION_BYTES,
            ),
        }
    }

    /// Checks that `items` items of `item_size` bytes each stay within the
    /// limit, as apache-avro does before it reserves an array or a map.
    pub(crate) fn collection(&self, items: usize, item_size: usize) -> Result<(), Error> {
        match items.checked_mul(item_size) {
            Some(bytes) if bytes <= self.max_bytes => Ok(()),
            Some(bytes) => Err(Error::malformed(format!(
                "a collection of {items} items would take {bytes} bytes, over the limit of {} bytes",
                self.max_bytes
            ))),
            None => Err(Error::malformed(format!(
                "a collection of {items} items overflows"
            ))),
        }
    }
}

/// The unread part of a body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor<'de> {
    rest: &'de [u8],
    limits: Limits,
}

impl<'de> Cursor<'de> {
    /// A cursor at the start of `bytes`.
    pub(crate) fn new(bytes: &'de [u8], limits: Limits) -> Self {
        Cursor {
            rest: bytes,
            limits,
        }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The limits lengths and counts are checked against.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// A variable-length integer, before zig-zag decoding: at most 10 bytes.
    #[inline]
    fn varint(&mut self) -> Result<u64, Error> {
        if let Some((&first, rest)) = self.rest.split_first() {
            if first < 0x80 {
                self.rest = rest;
                return Ok(u64::from(first));
            }
        }
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let Some((&byte, rest)) = self.rest.split_first() else {
                return Err(Error::truncated("the body ends inside a number"));
            };
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(Error::malformed(
            "a variable-length number runs over 10 bytes",
        ))
    }

    /// An Avro `long`.
    #[inline]
    pub(crate) fn long(&mut self) -> Result<i64, Error> {
        let zigzag = self.varint()?;
        // As apache-avro: the bits shifted out of a tenth byte are dropped.
        let half = (zigzag >> 1) as i64;
        Ok(if zigzag & 1 == 0 { half } else { !half })
    }

    /// An Avro `int`: a `long` that must fit 32 bits.
    #[inline]
    pub(crate) fn int(&mut self) -> Result<i32, Error> {
        let value = self.long()?;
        i32::try_from(value)
            .map_err(|_| Error::malformed(format!("the int {value} is out of the 32-bit range")))
    }

    /// The next `n` bytes.
    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'de [u8], Error> {
        if n > self.rest.len() {
            return Err(Error::truncated(format!(
                "a value needs {n} bytes, {} are left",
                self.rest.len()
            )));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    /// An Avro `boolean`: one byte, 0 or 1.
    #[inline]
    pub(crate) fn boolean(&mut self) -> Result<bool, Error> {
        match self.take(1)? {
            [0] => Ok(false),
            [1] => Ok(true),
            other => Err(Error::malformed(format!(
                "a boolean is the byte {:#04x}, not 0 or 1",
                other.first().copied().unwrap_or_default()
            ))),
        }
    }

    /// An Avro `float`: 4 bytes, little endian.
    #[inline]
    pub(crate) fn float(&mut self) -> Result<f32, Error> {
        let bytes = self.take(4)?;
        let mut array = [0u8; 4];
        array.copy_from_slice(bytes);
        Ok(f32::from_le_bytes(array))
    }

    /// An Avro `double`: 8 bytes, little endian.
    #[inline]
    pub(crate) fn double(&mut self) -> Result<f64, Error> {
        let bytes = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(f64::from_le_bytes(array))
    }

    /// The length of a `bytes` or `string` value.
    #[inline]
    fn length(&mut self) -> Result<usize, Error> {
        let length = self.long()?;
        let length = usize::try_from(length)
            .map_err(|_| Error::malformed(format!("a length is negative ({length})")))?;
        if length > self.limits.max_bytes {
            return Err(Error::malformed(format!(
                "a length of {length} bytes is over the limit of {} bytes",
                self.limits.max_bytes
            )));
        }
        Ok(length)
    }

    /// An Avro `bytes` value, borrowed from the body.
    #[inline]
    pub(crate) fn bytes(&mut self) -> Result<&'de [u8], Error> {
        let length = self.length()?;
        self.take(length)
    }

    /// An Avro `string` value, borrowed from the body.
    #[inline]
    pub(crate) fn string(&mut self) -> Result<&'de str, Error> {
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes)
            .map_err(|e| Error::malformed(format!("a string is not valid UTF-8 ({e})")))
    }

    /// The item count of the next block of an array or map; `None` at the
    /// block that ends it. A negative count is followed by the block's size in
    /// bytes, which is read and not used (as apache-avro does).
    pub(crate) fn block(&mut self) -> Result<Option<usize>, Error> {
        let count = self.long()?;
        let count = match count {
            0 => return Ok(None),
            count if count < 0 => {
                self.long()?;
                count
                    .checked_neg()
                    .ok_or_else(|| Error::malformed("a block count overflows"))?
            }
            count => count,
        };
        let count = usize::try_from(count)
            .map_err(|_| Error::malformed(format!("a block count of {count} overflows")))?;
        if count > self.limits.max_bytes {
            return Err(Error::malformed(format!(
                "a block of {count} items is over the limit of {} bytes",
                self.limits.max_bytes
            )));
        }
        Ok(Some(count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(bytes: &[u8]) -> Cursor<'_> {
        Cursor::new(bytes, Limits { max_bytes: 1000 })
    }

    #[test]
    fn longs_are_zigzag_varints() {
        let cases: [(&[u8], i64); 6] = [
            (&[0], 0),
            (&[1], -1),
            (&[2], 1),
            (&[0x7f], -64),
            (&[0x80, 0x01], 64),
            (
                &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                i64::MAX,
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(cursor(bytes).long(), Ok(expected), "{bytes:?}");
        }
    }

    #[test]
    fn a_varint_cut_short_is_truncation_and_one_too_long_is_malformed() {
        let cut = cursor(&[0x80, 0x80]).long().expect_err("cut");
        assert_eq!(cut.0.reason, Reason::Truncated);
        let long = cursor(&[0xff; 10])
            .long()
            .expect_err("10 bytes, all continued");
        assert_eq!(long.0.reason, Reason::InvalidAvro);
    }

    #[test]
    fn lengths_are_checked_before_anything_is_taken() {
        // 2000, zig-zag: over the limit of 1000.
        let over = cursor(&[0xa0, 0x1f]).bytes().expect_err("over the limit");
        assert_eq!(over.0.reason, Reason::InvalidAvro);
        // 500: within the limit, past the end.
        let past = cursor(&[0xe8, 0x07, b'a'])
            .bytes()
            .expect_err("past the end");
        assert_eq!(past.0.reason, Reason::Truncated);
        let negative = cursor(&[0x01]).bytes().expect_err("negative");
        assert_eq!(negative.0.reason, Reason::InvalidAvro);
        assert_eq!(cursor(&[0x04, b'h', b'i']).string(), Ok("hi"));
    }

    #[test]
    fn booleans_are_zero_or_one() {
        assert_eq!(cursor(&[1]).boolean(), Ok(true));
        let bad = cursor(&[2]).boolean().expect_err("2");
        assert_eq!(bad.0.reason, Reason::InvalidAvro);
        let none = cursor(&[]).boolean().expect_err("empty");
        assert_eq!(none.0.reason, Reason::Truncated);
    }

    #[test]
    fn paths_read_outermost_first() {
        let error = Error::malformed("bad").at("email").at("user");
        assert_eq!(error.to_string(), "field `user.email`: bad");
        let error = Error::malformed("bad").at("[\"k\"]").at("traits");
        assert_eq!(error.0.path(), "traits[\"k\"]");
    }
}
