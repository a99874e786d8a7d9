//! The Confluent wire format: `0x00`, schema id (u32, big endian), Avro datum.

use thiserror::Error;

/// The magic byte that opens every Confluent-framed message.
pub const MAGIC: u8 = 0;
/// Magic byte plus schema id.
pub const HEADER_LEN: usize = 5;

/// Why bytes are not a Confluent-framed message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("message is {len} bytes, shorter than the 5-byte Confluent header")]
    TooShort { len: usize },
    #[error(
        "first byte is {found:#04x}, not the Confluent magic byte 0x00: not Confluent-framed Avro"
    )]
    BadMagic { found: u8 },
}

/// Splits a framed message into its schema id and Avro body.
pub fn parse(bytes: &[u8]) -> Result<(u32, &[u8]), FrameError> {
    if bytes.len() < HEADER_LEN {
        return Err(FrameError::TooShort { len: bytes.len() });
    }
    if bytes[0] != MAGIC {
        return Err(FrameError::BadMagic { found: bytes[0] });
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[HEADER_LEN..]))
}

/// Frames an Avro body written with schema `id`.
pub fn frame(id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let framed = frame(0x0102_0304, b"body");
        assert_eq!(framed[..5], [0, 1, 2, 3, 4]);
        assert_eq!(parse(&framed), Ok((0x0102_0304, &b"body"[..])));
    }

    #[test]
    fn rejects_short_and_unframed_input() {
        let cases: [(&[u8], FrameError); 4] = [
            (b"", FrameError::TooShort { len: 0 }),
            (&[0, 0, 0, 1], FrameError::TooShort { len: 4 }),
            (&[1, 0, 0, 0, 1, 2], FrameError::BadMagic { found: 1 }),
            (b"{\"json\": true}", FrameError::BadMagic { found: b'{' }),
        ];
        for (bytes, expected) in cases {
            assert_eq!(parse(bytes), Err(expected), "{bytes:?}");
        }
    }

    #[test]
    fn empty_body_is_a_valid_frame() {
        assert_eq!(parse(&[0, 0, 0, 0, 7]), Ok((7, &[][..])));
    }
}
