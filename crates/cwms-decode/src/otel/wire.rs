//! The protobuf wire format, as far as the OpenTelemetry decoder needs it: varints and the
//! fields of one message, every read bounds-checked, nothing recursive.
//!
//! A message is a sequence of fields, each a tag (a varint: field number times 8 plus the wire
//! type) and a payload whose shape the wire type gives: 0 a varint, 1 eight bytes, 2 a varint
//! length and that many bytes, 5 four bytes. Wire types 3 and 4 (the groups of proto2, which no
//! OpenTelemetry message uses) and 6 and 7 (undefined) are refused, since a reader cannot know
//! where their payload ends.

use std::fmt;

/// A problem with the bytes themselves, found at an absolute offset of the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WireError {
    pub offset: usize,
    pub kind: WireProblem,
}

/// Why the bytes of a message are not protobuf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireProblem {
    /// The bytes end inside a varint.
    TruncatedVarint,
    /// A varint longer than ten bytes, or whose tenth byte holds bits beyond 64.
    VarintOverflow,
    /// A tag with field number 0, or one above the largest protobuf allows (2^29 - 1).
    BadFieldNumber(u64),
    /// A wire type that is not 0, 1, 2 or 5.
    BadWireType { field: u32, wire_type: u8 },
    /// A payload that runs past the end of its message.
    PastEnd { field: u32, needed: u64, available: usize },
}

impl fmt::Display for WireProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WireProblem::TruncatedVarint => f.write_str("truncated varint (the bytes end inside it)"),
            WireProblem::VarintOverflow => f.write_str("varint longer than 64 bits"),
            WireProblem::BadFieldNumber(n) => write!(f, "illegal field number {n} in a tag"),
            WireProblem::BadWireType { field, wire_type } => {
                let what = match wire_type {
                    3 | 4 => " (a proto2 group, which no OpenTelemetry message has)",
                    _ => " (undefined)",
                };
                write!(f, "field {field} has illegal wire type {wire_type}{what}")
            }
            WireProblem::PastEnd { field, needed, available } => {
                write!(f, "field {field} needs {needed} bytes but its message has {available} left")
            }
        }
    }
}

/// The payload of one field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Payload<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl Payload<'_> {
    /// The wire type's name, for messages about a field of the wrong type.
    pub fn wire_name(&self) -> &'static str {
        match self {
            Payload::Varint(_) => "a varint",
            Payload::Fixed64(_) => "a 64-bit value",
            Payload::Bytes(_) => "a length-delimited value",
            Payload::Fixed32(_) => "a 32-bit value",
        }
    }
}

/// One field of a message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'a> {
    pub number: u32,
    pub payload: Payload<'a>,
    /// Absolute offset (in the record) of the field's tag.
    pub offset: usize,
    /// Absolute offset of the payload's first byte (after the length, for bytes).
    pub payload_offset: usize,
}

/// Reads a varint at `bytes[*at..]`, advancing `at`. `base` is the absolute offset of `bytes[0]`.
#[inline(always)]
pub(crate) fn varint(bytes: &[u8], at: &mut usize, base: usize) -> Result<u64, WireError> {
    // The usual varint here is one byte (tags, short lengths).
    if let Some(&b) = bytes.get(*at)
        && b < 0x80
    {
        *at += 1;
        return Ok(u64::from(b));
    }
    varint_slow(bytes, at, base)
}

#[inline(never)]
fn varint_slow(bytes: &[u8], at: &mut usize, base: usize) -> Result<u64, WireError> {
    let start = *at;
    let mut value = 0u64;
    for i in 0..10 {
        let Some(&b) = bytes.get(start + i) else {
            return Err(WireError { offset: base + start, kind: WireProblem::TruncatedVarint });
        };
        if i == 9 && b > 1 {
            return Err(WireError { offset: base + start, kind: WireProblem::VarintOverflow });
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            *at = start + i + 1;
            return Ok(value);
        }
    }
    Err(WireError { offset: base + start, kind: WireProblem::VarintOverflow })
}

/// The fields of one message, in order.
pub(crate) struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
    base: usize,
}

impl<'a> Fields<'a> {
    /// The fields of `bytes`, a whole message whose first byte is at absolute offset `base`.
    pub fn new(bytes: &'a [u8], base: usize) -> Self {
        Fields { bytes, at: 0, base }
    }

    /// The next field, `None` at the end of the message.
    #[inline(always)]
    pub fn next_field(&mut self) -> Result<Option<Field<'a>>, WireError> {
        if self.at >= self.bytes.len() {
            return Ok(None);
        }
        let offset = self.base + self.at;
        let tag = varint(self.bytes, &mut self.at, self.base)?;
        let number = tag >> 3;
        if number == 0 || number > (1 << 29) - 1 {
            return Err(WireError { offset, kind: WireProblem::BadFieldNumber(number) });
        }
        let number = number as u32;
        let wire_type = (tag & 7) as u8;
        let available = self.bytes.len() - self.at;
        let past_end = |needed: u64| WireError { offset, kind: WireProblem::PastEnd { field: number, needed, available } };
        let mut payload_offset = self.base + self.at;
        let payload = match wire_type {
            0 => Payload::Varint(varint(self.bytes, &mut self.at, self.base)?),
            1 => {
                let Some(chunk) = self.bytes.get(self.at..self.at + 8) else { return Err(past_end(8)) };
                self.at += 8;
                Payload::Fixed64(u64::from_le_bytes(chunk.try_into().expect("eight bytes")))
            }
            2 => {
                let length = varint(self.bytes, &mut self.at, self.base)?;
                let available = self.bytes.len() - self.at;
                if length > available as u64 {
                    return Err(WireError { offset, kind: WireProblem::PastEnd { field: number, needed: length, available } });
                }
                let start = self.at;
                payload_offset = self.base + start;
                self.at += length as usize;
                Payload::Bytes(&self.bytes[start..self.at])
            }
            5 => {
                let Some(chunk) = self.bytes.get(self.at..self.at + 4) else { return Err(past_end(4)) };
                self.at += 4;
                Payload::Fixed32(u32::from_le_bytes(chunk.try_into().expect("four bytes")))
            }
            _ => return Err(WireError { offset, kind: WireProblem::BadWireType { field: number, wire_type } }),
        };
        Ok(Some(Field { number, payload, offset, payload_offset }))
    }
}

/// Appends a varint (the tests' half of [`varint`]).
#[cfg(test)]
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<u64, WireProblem> {
        let mut at = 0;
        let v = varint(bytes, &mut at, 0).map_err(|e| e.kind)?;
        assert_eq!(at, bytes.len(), "the whole varint is consumed");
        Ok(v)
    }

    #[test]
    fn varints() {
        assert_eq!(read(&[0]), Ok(0));
        assert_eq!(read(&[0x7f]), Ok(127));
        assert_eq!(read(&[0xa5, 0x05]), Ok(677));
        assert_eq!(read(&[0xff, 0xff, 0xff, 0xff, 0x0f]), Ok(u64::from(u32::MAX)));
        assert_eq!(read(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), Ok(u64::MAX));
        assert_eq!(read(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]), Err(WireProblem::VarintOverflow));
        assert_eq!(read(&[0x80; 11]), Err(WireProblem::VarintOverflow));
        assert_eq!(read(&[]), Err(WireProblem::TruncatedVarint));
        assert_eq!(read(&[0x80, 0x80]), Err(WireProblem::TruncatedVarint));
        for v in [0, 1, 127, 128, 300, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(read(&out), Ok(v), "{v}");
        }
    }

    fn fields(bytes: &[u8]) -> Result<Vec<(u32, Payload<'_>, usize)>, WireError> {
        let mut fields = Fields::new(bytes, 100);
        let mut out = Vec::new();
        while let Some(f) = fields.next_field()? {
            out.push((f.number, f.payload, f.payload_offset));
        }
        Ok(out)
    }

    #[test]
    fn fields_of_every_wire_type() {
        let bytes = [0x08, 0x96, 0x01, 0x11, 1, 0, 0, 0, 0, 0, 0, 0, 0x1a, 0x02, b'h', b'i', 0x25, 2, 0, 0, 0];
        assert_eq!(
            fields(&bytes).unwrap(),
            [(1, Payload::Varint(150), 101), (2, Payload::Fixed64(1), 104), (3, Payload::Bytes(b"hi"), 114), (4, Payload::Fixed32(2), 117)]
        );
    }

    #[test]
    fn bad_fields() {
        let err = |bytes: &[u8]| fields(bytes).unwrap_err();
        assert_eq!(err(&[0x0b]), WireError { offset: 100, kind: WireProblem::BadWireType { field: 1, wire_type: 3 } });
        assert_eq!(err(&[0x08, 1, 0x0c]), WireError { offset: 102, kind: WireProblem::BadWireType { field: 1, wire_type: 4 } });
        assert_eq!(err(&[0x0e]).kind, WireProblem::BadWireType { field: 1, wire_type: 6 });
        assert_eq!(err(&[0x0f]).kind, WireProblem::BadWireType { field: 1, wire_type: 7 });
        assert_eq!(err(&[0x02]).kind, WireProblem::BadFieldNumber(0));
        let mut too_large = Vec::new();
        put_varint(&mut too_large, (1 << 29) << 3);
        assert_eq!(err(&too_large).kind, WireProblem::BadFieldNumber(1 << 29));
        assert_eq!(err(&[0x0a, 0x03, 1, 2]).kind, WireProblem::PastEnd { field: 1, needed: 3, available: 2 });
        assert_eq!(err(&[0x09, 1, 2, 3]).kind, WireProblem::PastEnd { field: 1, needed: 8, available: 3 });
        assert_eq!(err(&[0x0d, 1]).kind, WireProblem::PastEnd { field: 1, needed: 4, available: 1 });
        assert_eq!(err(&[0x08]), WireError { offset: 101, kind: WireProblem::TruncatedVarint });
        // A length far beyond any input is compared, never added to an offset.
        let mut huge = vec![0x0a];
        put_varint(&mut huge, u64::MAX);
        assert_eq!(err(&huge).kind, WireProblem::PastEnd { field: 1, needed: u64::MAX, available: 0 });
    }
}
