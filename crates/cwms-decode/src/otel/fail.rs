//! Problems on their way up from where they are found, and the field accessors that raise them.

use super::wire::{Field, Payload, WireError};
use super::{OtelError, OtelProblem};

/// A problem on its way up from where it was found: each message level adds its segment of
/// the path (innermost first), so the path is only ever built for an error.
#[derive(Debug)]
pub(super) struct Fail {
    pub(super) offset: usize,
    pub(super) problem: OtelProblem,
    pub(super) path: Vec<Segment>,
    pub(super) metric: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Segment {
    Field(&'static str),
    Index(&'static str, usize),
}

pub(super) type R<T> = Result<T, Box<Fail>>;

// Errors are built out of line, so that the functions on the way of every field stay small
// enough to inline.
#[cold]
#[inline(never)]
pub(super) fn fail<T>(offset: usize, problem: OtelProblem) -> R<T> {
    Err(Box::new(Fail { offset, problem, path: Vec::new(), metric: None }))
}

#[cold]
#[inline(never)]
pub(super) fn wrong_wire_type<T>(field: &Field<'_>, expected: &'static str, name: &'static str) -> R<T> {
    fail(field.offset, OtelProblem::WrongWireType { expected, found: field.payload.wire_name() }).within(Segment::Field(name))
}

#[cold]
#[inline(never)]
pub(super) fn add_segment(mut fail: Box<Fail>, segment: Segment) -> Box<Fail> {
    fail.path.push(segment);
    fail
}

impl From<WireError> for Box<Fail> {
    #[cold]
    #[inline(never)]
    fn from(e: WireError) -> Self {
        Box::new(Fail { offset: e.offset, problem: OtelProblem::Wire(e.kind), path: Vec::new(), metric: None })
    }
}

impl Fail {
    pub(super) fn finish(self, message: usize) -> OtelError {
        let mut field = String::new();
        // An empty name is a level whose index its parent already names.
        for segment in self.path.iter().rev().filter(|s| !matches!(s, Segment::Field(""))) {
            if !field.is_empty() {
                field.push('.');
            }
            match segment {
                Segment::Field(name) => field.push_str(name),
                Segment::Index(name, i) => field.push_str(&format!("{name}[{i}]")),
            }
        }
        OtelError { message, offset: self.offset, field, metric: self.metric, problem: self.problem }
    }
}

/// Adds a path segment to an error on its way up.
pub(super) trait Within<T> {
    fn within(self, segment: Segment) -> R<T>;
}

impl<T> Within<T> for R<T> {
    #[inline]
    fn within(self, segment: Segment) -> R<T> {
        self.map_err(|fail| add_segment(fail, segment))
    }
}

#[inline]
pub(super) fn bytes<'a>(field: &Field<'a>, name: &'static str) -> R<&'a [u8]> {
    match field.payload {
        Payload::Bytes(b) => Ok(b),
        _ => wrong_wire_type(field, "a length-delimited value", name),
    }
}

#[inline]
pub(super) fn fixed64(field: &Field<'_>, name: &'static str) -> R<u64> {
    match field.payload {
        Payload::Fixed64(v) => Ok(v),
        _ => wrong_wire_type(field, "a 64-bit value", name),
    }
}

#[inline]
pub(super) fn checked<'a>(b: &'a [u8], offset: usize, name: &'static str) -> R<&'a str> {
    std::str::from_utf8(b).or_else(|_| fail(offset, OtelProblem::InvalidUtf8).within(Segment::Field(name)))
}
