//! Strings and key-value pairs: checked as UTF-8 as few times as possible, borrowed from the record.

use super::OtelProblem;
use super::fail::{Fail, R, Segment, Within, bytes, checked, fail};
use super::wire::{Field, Fields};

/// A message whose bytes are checked as UTF-8 all at once, when they are: the strings of its
/// fields (and of messages inside it) are then slices of it, with no check of their own.
///
/// Attributes are short strings, so checking each on its own costs mostly the call; their
/// message's tags and lengths are ASCII bytes too (one-byte varints below 128), so the whole
/// message is UTF-8 exactly when its strings are (a longer length makes it invalid, and its
/// strings are then checked one by one). A field's string is taken only where slicing the checked
/// text gives exactly its bytes, so the shortcut can never accept what a check would refuse.
#[derive(Clone, Copy)]
pub(super) struct Text<'a> {
    text: Option<&'a str>,
    base: usize,
}

impl<'a> Text<'a> {
    #[inline]
    pub(super) fn of(body: &'a [u8], base: usize) -> Self {
        Text { text: std::str::from_utf8(body).ok(), base }
    }

    /// No checked text: every string is checked on its own.
    pub(super) const NONE: Text<'static> = Text { text: None, base: 0 };

    /// The string payload of `field`, a field of this message or of one inside it.
    #[inline]
    pub(super) fn string(&self, field: &Field<'a>, name: &'static str) -> R<&'a str> {
        self.slice(bytes(field, name)?, field.payload_offset, name)
    }

    /// `b`, bytes of this message at absolute offset `offset`, as a string.
    #[inline]
    pub(super) fn slice(&self, b: &'a [u8], offset: usize, name: &'static str) -> R<&'a str> {
        if let Some(text) = self.text
            && let Some(start) = offset.checked_sub(self.base)
            && let Some(s) = text.get(start..start + b.len())
        {
            return Ok(s);
        }
        checked(b, offset, name)
    }
}

/// A `KeyValue`: its key and its value's bytes (an `AnyValue`), if it has one.
pub(super) struct KeyValue<'a> {
    /// The key's bytes, compared with the keys CloudWatch uses before any UTF-8 check.
    pub(super) key: &'a [u8],
    pub(super) key_offset: usize,
    pub(super) value: Option<Located<'a>>,
    /// The value's string, when the fast path found one (see [`two_strings`]).
    pub(super) string: Option<Located<'a>>,
    pub(super) offset: usize,
    /// The checked text of a message around it.
    pub(super) text: Text<'a>,
}

/// Bytes of the record and the absolute offset of their first byte.
pub(super) type Located<'a> = (&'a [u8], usize);

/// The two strings of a message written exactly as `0a len a 12 len b` with one-byte lengths and
/// nothing else, with their offsets: how CloudWatch writes a `StringKeyValue` (0.7 labels), and,
/// with `b` being an `AnyValue` holding only a string (`0a len s`), a `KeyValue` attribute.
///
/// This is a shortcut for the usual case, which the field walk would read the same way (the same
/// two fields, each once): anything else, a longer length included, returns `None` and takes
/// the walk.
#[inline(always)]
pub(super) fn two_strings(body: &[u8], base: usize) -> Option<(Located<'_>, Located<'_>)> {
    let (&[0x0a, a_len], rest) = body.split_first_chunk::<2>()? else { return None };
    let a_len = usize::from(a_len);
    let (a, rest) = (rest.get(..a_len)?, rest.get(a_len..)?);
    let (&[0x12, b_len], b) = rest.split_first_chunk::<2>()? else { return None };
    (a_len < 0x80 && usize::from(b_len) == b.len() && b.len() < 0x80).then_some(((a, base + 2), (b, base + 4 + a_len)))
}

#[inline]
pub(super) fn key_value<'a>(body: &'a [u8], base: usize, text: Text<'a>) -> R<KeyValue<'a>> {
    let mut kv = KeyValue { key: b"", key_offset: base, value: None, string: None, offset: base, text };
    if let Some(((key, key_offset), (value, value_offset))) = two_strings(body, base) {
        (kv.key, kv.key_offset, kv.value) = (key, key_offset, Some((value, value_offset)));
        if let Some((&[0x0a, len], string)) = value.split_first_chunk::<2>()
            && usize::from(len) == string.len()
        {
            kv.string = Some((string, value_offset + 2));
        }
        return Ok(kv);
    }
    let mut fields = Fields::new(body, base);
    while let Some(field) = fields.next_field()? {
        match field.number {
            1 => (kv.key, kv.key_offset) = (bytes(&field, "key")?, field.payload_offset),
            2 => kv.value = Some((bytes(&field, "value")?, field.payload_offset)),
            _ => {}
        }
    }
    Ok(kv)
}

/// The `AnyValue` fields, by number, as the type they hold.
pub(super) const ANY_VALUE_KINDS: [&str; 8] =
    ["a string", "a bool", "an int", "a double", "an array", "a kvlist", "bytes", "a string index (of the profiling signal)"];

impl<'a> KeyValue<'a> {
    /// The value, which must be set to one field of `AnyValue` (the last, as for a oneof): its
    /// payload bytes for `wanted` (1 for a string, 6 for a kvlist) or else an error.
    #[inline]
    pub(super) fn any(&self, wanted: u32) -> R<Field<'a>> {
        let mut last: Option<Field<'a>> = None;
        if let Some((body, base)) = self.value {
            let mut fields = Fields::new(body, base);
            while let Some(field) = fields.next_field().map_err(Box::<Fail>::from).within(Segment::Field("value"))? {
                if (1..=8).contains(&field.number) {
                    last = Some(field);
                }
            }
        }
        match last {
            Some(field) if field.number == wanted => Ok(field),
            other => self.wrong_value(other.map(|f| f.number), wanted),
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn wrong_value<T>(&self, found: Option<u32>, wanted: u32) -> R<T> {
        let found = found.map_or("unset", |n| ANY_VALUE_KINDS[n as usize - 1]);
        let expected = ANY_VALUE_KINDS[wanted as usize - 1];
        fail(self.offset, OtelProblem::WrongValueType { key: String::from_utf8_lossy(self.key).into_owned(), found, expected })
    }

    #[cold]
    #[inline(never)]
    pub(super) fn duplicate<T>(&self) -> R<T> {
        fail(self.offset, OtelProblem::DuplicateAttribute(String::from_utf8_lossy(self.key).into_owned()))
    }

    #[inline]
    pub(super) fn key_str(&self) -> R<&'a str> {
        self.text.slice(self.key, self.key_offset, "key")
    }

    #[inline]
    pub(super) fn string(&self) -> R<&'a str> {
        match self.string {
            Some((b, at)) => self.text.slice(b, at, "value"),
            None => self.text.string(&self.any(1)?, "value"),
        }
    }
}
