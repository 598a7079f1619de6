//! A minimal RowBinary encoder, and the reader for the few columns read back from encoded
//! rows (sort keys). Rows are encoded as soon as they are normalized and the
//! pipeline holds only these bytes until ClickHouse acknowledges them.
//!
//! Only portable column types are written (String, Int32/64, UInt8, Nullable of those), so the
//! same bytes load into ClickHouse 18.16 and 23.8+; version-specific types (DateTime64,
//! LowCardinality) exist only in DDL, computed from or wrapped around these stored columns.

/// Appends RowBinary values to a byte buffer.
pub struct RowWriter<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> RowWriter<'a> {
    pub fn new(buf: &'a mut Vec<u8>) -> Self {
        RowWriter { buf }
    }

    /// Unsigned LEB128, the length prefix of strings and arrays.
    fn varint(&mut self, mut n: u64) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }

    pub fn string(&mut self, s: &str) -> &mut Self {
        self.varint(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
        self
    }

    /// `Array(String)`.
    pub fn strings(&mut self, items: &[String]) -> &mut Self {
        self.varint(items.len() as u64);
        for item in items {
            self.string(item);
        }
        self
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(v as u8)
    }

    pub fn opt_i64(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            None => self.u8(1),
            Some(v) => self.u8(0).i64(v),
        }
    }

    pub fn opt_string(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            None => self.u8(1),
            Some(v) => self.u8(0).string(v),
        }
    }

    /// `Nullable(UInt8)` for a tri-state flag.
    pub fn opt_bool(&mut self, v: Option<bool>) -> &mut Self {
        match v {
            None => self.u8(1),
            Some(v) => self.u8(0).bool(v),
        }
    }
}

/// Reads back the RowBinary values a [`RowWriter`] wrote, for the few places that need a
/// column of an encoded row (the writer's sort keys, `store::tables::sort_key`). `None` when
/// the row ends early or a length is impossible: the caller treats the row as unreadable.
pub struct RowReader<'r> {
    rest: &'r [u8],
}

impl<'r> RowReader<'r> {
    pub fn new(row: &'r [u8]) -> Self {
        RowReader { rest: row }
    }

    fn take(&mut self, n: usize) -> Option<&'r [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(taken)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    pub fn string(&mut self) -> Option<&'r [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        self.take(len)
    }

    pub fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    pub fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    pub fn opt_i64(&mut self) -> Option<Option<i64>> {
        match self.u8()? {
            1 => Some(None),
            0 => Some(Some(self.i64()?)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_uses_leb128_length() {
        let mut buf = Vec::new();
        RowWriter::new(&mut buf).string("ab");
        assert_eq!(buf, [2, b'a', b'b']);
        let long = "x".repeat(300);
        let mut buf = Vec::new();
        RowWriter::new(&mut buf).string(&long);
        // 300 = 0b1_0010_1100 → 0xAC 0x02
        assert_eq!(&buf[..2], &[0xac, 0x02]);
        assert_eq!(buf.len(), 302);
    }

    #[test]
    fn nullable_prefix_and_little_endian_ints() {
        let mut buf = Vec::new();
        RowWriter::new(&mut buf)
            .opt_i64(None)
            .opt_i64(Some(1))
            .i32(-2)
            .opt_bool(Some(true));
        assert_eq!(
            buf,
            [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0, 1]
        );
    }

    #[test]
    fn the_reader_reads_what_the_writer_wrote_and_refuses_a_short_row() {
        let long = "y".repeat(300);
        let mut buf = Vec::new();
        RowWriter::new(&mut buf)
            .string("ab")
            .opt_i64(None)
            .opt_i64(Some(-5))
            .u8(7)
            .string(&long)
            .i64(i64::MIN);
        let mut r = RowReader::new(&buf);
        assert_eq!(r.string(), Some(&b"ab"[..]));
        assert_eq!(r.opt_i64(), Some(None));
        assert_eq!(r.opt_i64(), Some(Some(-5)));
        assert_eq!(r.u8(), Some(7));
        assert_eq!(r.string(), Some(long.as_bytes()));
        assert_eq!(r.i64(), Some(i64::MIN));
        assert_eq!(r.u8(), None, "nothing left");

        // A length prefix promising more than follows, a cut integer, a bad null flag,
        // and a varint that never ends.
        assert_eq!(RowReader::new(&[0xff, 0x7f, b'x']).string(), None);
        assert_eq!(RowReader::new(&[1, 2, 3]).i64(), None);
        assert_eq!(RowReader::new(&[2, 0, 0, 0, 0, 0, 0, 0, 0]).opt_i64(), None);
        assert_eq!(RowReader::new(&[0x80; 11]).string(), None);
    }
}
