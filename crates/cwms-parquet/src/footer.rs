//! The one change the lake makes to the footer parquet-rs writes: float and double columns
//! declare the column order `TYPE_DEFINED_ORDER`, not `IEEE_754_TOTAL_ORDER`.
//!
//! # Why
//!
//! parquet-rs 58 and later (arrow-rs pull request 9619, PARQUET-2249) write `IEEE_754_TOTAL_ORDER`
//! for every FLOAT and DOUBLE column and have no writer setting to turn it off. That order is a
//! 2025 addition to the Parquet format, and readers built before it reject the whole file:
//! polars 1.30 fails with "Invalid thrift: bad data", and Spark's Hive SerDe reader with
//! "Group type ... does not contain requested field". The lake is read by engines whose Parquet
//! library we do not control (Athena, Redshift Spectrum, Glue), so it uses what every reader
//! since 2017 understands.
//!
//! The alternatives were weighed: parquet 57 (the last release before the new order) would pin
//! the lake to an unmaintained major version with a different writer API (row-group sizing and
//! the row-group writer factory) and without the fixes since; no parquet-rs setting exists. A
//! rewrite of the footer's few bytes is exact and local: in Thrift's compact protocol a
//! `ColumnOrder` union is one field header byte (`0x1C` for field 1, `TYPE_ORDER`; `0x2C` for
//! field 2, `IEEE_754_TOTAL_ORDER`), the empty struct's stop byte and the union's stop byte. So
//! the rewrite changes one byte per float column and nothing moves: no offset in the file (page
//! indexes, row groups) changes, and the footer's length stays the same.
//!
//! # Why the statistics stay right
//!
//! parquet-rs computes float min/max under the IEEE 754 total order. The lake holds no NaN (the
//! decoder refuses non-finite numbers), so the only values total order ranks differently from
//! `TYPE_DEFINED_ORDER`'s signed comparison are -0.0 and +0.0, which total order puts apart
//! and numeric comparison holds equal: a total-order minimum or maximum is then still a true
//! numeric bound (-0.0 == +0.0), so a reader skipping row groups by these statistics under
//! either order skips only what holds no match.

/// Compact-protocol type ids (Thrift's `TCompactProtocol`).
mod ty {
    pub const BOOL_TRUE: u8 = 1;
    pub const BOOL_FALSE: u8 = 2;
    pub const BYTE: u8 = 3;
    pub const I16: u8 = 4;
    pub const I32: u8 = 5;
    pub const I64: u8 = 6;
    pub const DOUBLE: u8 = 7;
    pub const BINARY: u8 = 8;
    pub const LIST: u8 = 9;
    pub const SET: u8 = 10;
    pub const MAP: u8 = 11;
    pub const STRUCT: u8 = 12;
    pub const UUID: u8 = 13;
}

/// `FileMetaData.column_orders`.
const COLUMN_ORDERS_FIELD: i16 = 7;
/// `ColumnOrder.TYPE_ORDER` and `ColumnOrder.IEEE_754_TOTAL_ORDER`.
const TYPE_ORDER_FIELD: i16 = 1;
const IEEE_754_TOTAL_ORDER_FIELD: i16 = 2;

/// Nesting deeper than this is not a footer parquet-rs wrote.
const MAX_DEPTH: usize = 64;

/// Rewrites, in the Parquet file `file`, every `IEEE_754_TOTAL_ORDER` column order of the footer
/// into `TYPE_DEFINED_ORDER`, in place. Returns how many were rewritten.
///
/// # Errors
///
/// A message naming what is wrong when `file` is not a Parquet file with a plain (unencrypted)
/// footer in the compact protocol; the bytes are then unchanged.
pub(crate) fn use_type_defined_float_orders(file: &mut [u8]) -> Result<usize, String> {
    let len = file.len();
    if len < 12 || &file[..4] != b"PAR1" || &file[len - 4..] != b"PAR1" {
        return Err("not a parquet file (no PAR1 magic at both ends)".into());
    }
    let footer_len = u32::from_le_bytes(file[len - 8..len - 4].try_into().expect("four bytes")) as usize;
    let start = (len - 8).checked_sub(footer_len).filter(|&s| s >= 4).ok_or("the footer length is past the start of the file")?;
    let footer = &mut file[start..len - 8];
    let positions = ieee_order_positions(footer)?;
    for &at in &positions {
        footer[at] = (TYPE_ORDER_FIELD as u8) << 4 | ty::STRUCT;
    }
    Ok(positions.len())
}

/// The offsets, in a serialized `FileMetaData`, of the field headers of its `IEEE_754_TOTAL_ORDER`
/// column orders, after checking that the whole footer reads as compact Thrift.
fn ieee_order_positions(footer: &[u8]) -> Result<Vec<usize>, String> {
    let mut reader = Reader { bytes: footer, at: 0 };
    let mut positions = Vec::new();
    let mut last_id = 0i16;
    while let Some((id, kind)) = reader.field_header(&mut last_id)? {
        if id == COLUMN_ORDERS_FIELD && kind == ty::LIST {
            let (size, element) = reader.collection_header()?;
            if element != ty::STRUCT {
                return Err(format!("column_orders holds type {element}, not structs"));
            }
            for _ in 0..size {
                let mut union_last = 0i16;
                let header_at = reader.at;
                let Some((order, order_kind)) = reader.field_header(&mut union_last)? else {
                    return Err("an empty ColumnOrder union".into());
                };
                if order == IEEE_754_TOTAL_ORDER_FIELD && order_kind == ty::STRUCT {
                    // One byte, `(2 << 4) | STRUCT`, is what `(1 << 4) | STRUCT` replaces: the
                    // delta form, which parquet-rs always uses for a union's first field.
                    if reader.bytes[header_at] != (IEEE_754_TOTAL_ORDER_FIELD as u8) << 4 | ty::STRUCT {
                        return Err("an IEEE_754_TOTAL_ORDER header in the long form".into());
                    }
                    positions.push(header_at);
                }
                reader.skip(order_kind, 1)?;
                if reader.field_header(&mut union_last)?.is_some() {
                    return Err("a ColumnOrder union with two fields".into());
                }
            }
        } else {
            reader.skip(kind, 0)?;
        }
    }
    if reader.at != footer.len() {
        return Err(format!("{} bytes after the end of the footer's metadata", footer.len() - reader.at));
    }
    Ok(positions)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.bytes.get(self.at).ok_or("the footer ends in the middle of a value")?;
        self.at += 1;
        Ok(b)
    }

    fn advance(&mut self, n: usize) -> Result<(), String> {
        if n > self.bytes.len() - self.at {
            return Err("the footer ends in the middle of a value".into());
        }
        self.at += n;
        Ok(())
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7F).checked_shl(shift).ok_or("a varint longer than 64 bits")?;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a varint longer than 64 bits".into())
    }

    /// A struct field's header: `None` at the struct's stop byte, else its id and type.
    fn field_header(&mut self, last_id: &mut i16) -> Result<Option<(i16, u8)>, String> {
        let b = self.byte()?;
        if b == 0 {
            return Ok(None);
        }
        let kind = b & 0x0F;
        let delta = i16::from(b >> 4);
        let id = if delta == 0 {
            let zigzag = self.varint()?;
            i16::try_from((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64)).map_err(|_| "a field id out of range")?
        } else {
            last_id.checked_add(delta).ok_or("a field id out of range")?
        };
        *last_id = id;
        Ok(Some((id, kind)))
    }

    /// A list or set header: the element count and type.
    fn collection_header(&mut self) -> Result<(usize, u8), String> {
        let b = self.byte()?;
        let size = match b >> 4 {
            15 => self.varint()?,
            small => u64::from(small),
        };
        // Every element takes at least one byte: a larger count is a damaged footer, not a large one.
        let size = usize::try_from(size).ok().filter(|&s| s <= self.bytes.len() - self.at).ok_or("a collection larger than the footer")?;
        Ok((size, b & 0x0F))
    }

    /// Skips one value of type `kind` (in a struct field, where booleans carry no byte).
    fn skip(&mut self, kind: u8, depth: usize) -> Result<(), String> {
        self.skip_value(kind, depth, false)
    }

    fn skip_value(&mut self, kind: u8, depth: usize, in_collection: bool) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("values nested too deep".into());
        }
        match kind {
            ty::BOOL_TRUE | ty::BOOL_FALSE => {
                if in_collection {
                    self.byte()?;
                }
            }
            ty::BYTE => self.advance(1)?,
            ty::I16 | ty::I32 | ty::I64 => {
                self.varint()?;
            }
            ty::DOUBLE => self.advance(8)?,
            ty::BINARY => {
                let n = self.varint()?;
                self.advance(usize::try_from(n).map_err(|_| "a binary value larger than the footer")?)?;
            }
            ty::UUID => self.advance(16)?,
            ty::LIST | ty::SET => {
                let (size, element) = self.collection_header()?;
                for _ in 0..size {
                    self.skip_value(element, depth + 1, true)?;
                }
            }
            ty::MAP => {
                let size = self.varint()?;
                if size > 0 {
                    let types = self.byte()?;
                    for _ in 0..size {
                        self.skip_value(types >> 4, depth + 1, true)?;
                        self.skip_value(types & 0x0F, depth + 1, true)?;
                    }
                }
            }
            ty::STRUCT => {
                let mut last_id = 0;
                while let Some((_, field)) = self.field_header(&mut last_id)? {
                    self.skip_value(field, depth + 1, false)?;
                }
            }
            other => return Err(format!("unknown compact type {other}")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_parquet_footer_without_touching_it() {
        let check = |bytes: &[u8], reason: &str| {
            let mut copy = bytes.to_vec();
            assert_eq!(use_type_defined_float_orders(&mut copy).unwrap_err(), reason);
            assert_eq!(copy, bytes);
        };
        check(b"", "not a parquet file (no PAR1 magic at both ends)");
        check(b"PAR1\x00\x00\x00\x00PAR1", "the footer ends in the middle of a value");
        check(b"PAR1\x00\xff\x00\x00\x00PAR1", "the footer length is past the start of the file");
        // A footer `{7: list of 1 struct {2: struct {}}}` with a byte too many.
        check(b"PAR1\x79\x1c\x2c\x00\x00\x00\x00\x07\x00\x00\x00PAR1", "1 bytes after the end of the footer's metadata");
        check(b"PAR1\x79\x1c\x2c\x00\x00\x05\x00\x00\x00PAR1", "the footer ends in the middle of a value");
        check(b"PAR1\x0e\x00\x02\x00\x00\x00PAR1", "unknown compact type 14");
    }

    #[test]
    fn rewrites_only_the_total_orders() {
        // {7: [ {1: {}}, {2: {}} ]}
        let mut file = b"PAR1\x79\x2c\x1c\x00\x00\x2c\x00\x00\x00\x09\x00\x00\x00PAR1".to_vec();
        assert_eq!(use_type_defined_float_orders(&mut file), Ok(1));
        assert_eq!(&file[4..13], b"\x79\x2c\x1c\x00\x00\x1c\x00\x00\x00");
        assert_eq!(use_type_defined_float_orders(&mut file), Ok(0), "a second pass changes nothing");
    }
}
