//! A parser for plain documents, tried before serde_json's: it builds the same tree for what
//! GitLab sends, and gives up on anything else, which serde_json then parses (or refuses,
//! with its own error).
//!
//! Why: serde_json reaches the tree through its `Deserializer` and our visitor, value by
//! value, and that dispatch, not the tree, was most of the parse (benches/README.md, "Ninth
//! session"). This one reads bytes directly into the same [`Scratch`] stacks and arena.
//!
//! It gives up (`None`) on: any syntax error, a string with a control character, nesting
//! deeper than [`MAX_DEPTH`], and trailing text. What it does not read itself it hands to
//! serde_json piece by piece, so the value is serde_json's: a string with an escape, and any
//! number but a plain non-negative integer. `tests` compare both parsers on the fixtures, on
//! generated documents and on corrupted ones.

use super::{Arena, Number, Scratch, Text, Value};

/// Deeper documents are left to serde_json, whose own limit (128) then applies.
const MAX_DEPTH: usize = 64;

/// The document, in `arena`, or `None` when it is not plain (see the module docs).
pub(super) fn parse<'a>(text: &'a str, arena: &'a Arena) -> Option<Value<'a>> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        scratch: Scratch::for_document(arena),
    };
    parser.skip_whitespace();
    let value = parser.value(0)?;
    parser.skip_whitespace();
    (parser.pos == text.len()).then_some(value)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    scratch: Scratch<'a>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// JSON's four whitespace bytes, as serde_json skips them.
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    // Inlined into `object` and `array`: a value returned through memory was read back
    // before its stores had landed, a stall on most members (benches/README.md, "Ninth
    // session"); the containers stay out of line, as they recurse.
    #[inline(always)]
    fn value(&mut self, depth: usize) -> Option<Value<'a>> {
        match self.peek()? {
            b'"' => self.string().map(|text| self.scratch.string(text)),
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b't' => self.literal("true", Value::Bool(&true)),
            b'f' => self.literal("false", Value::Bool(&false)),
            b'n' => self.literal("null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    #[inline(always)]
    fn literal(&mut self, word: &str, value: Value<'a>) -> Option<Value<'a>> {
        let found = self.bytes[self.pos..].starts_with(word.as_bytes());
        found.then(|| {
            self.pos += word.len();
            value
        })
    }

    /// A string starting at the quote under `pos`: borrowed when it has no escape (then it
    /// holds no quote, backslash or control byte, as [`Text::verbatim`] promises), else
    /// serde_json's reading of it.
    #[inline(always)]
    fn string(&mut self) -> Option<Text<'a>> {
        let start = self.pos + 1;
        let mut end = stop(self.bytes, start);
        if self.bytes.get(end) == Some(&b'"') {
            self.pos = end + 1;
            return Some(Text::verbatim(self.text.get(start..end)?));
        }
        // An escape: find the closing quote, stepping over each escaped byte.
        loop {
            match self.bytes.get(end)? {
                b'"' => break,
                b'\\' => end = stop(self.bytes, end + 2),
                _ => return None, // a control character: serde_json's error
            }
        }
        let quoted = self.text.get(self.pos..=end)?;
        self.pos = end + 1;
        match self.serde_reading(quoted)? {
            Value::String(s) => Some(*s),
            _ => None,
        }
    }

    /// A plain non-negative integer that fits 19 digits is read here; any other number is
    /// serde_json's (its floats, negative zero, overflow into `f64`, errors).
    #[inline(always)]
    fn number(&mut self) -> Option<Value<'a>> {
        let start = self.pos;
        let len = self.bytes[start..]
            .iter()
            .take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .count();
        let token = &self.bytes[start..start + len];
        self.pos = start + len;
        let plain = token.len() <= 19
            && token.iter().all(u8::is_ascii_digit)
            && (token.len() == 1 || token[0] != b'0');
        if plain {
            let n = token.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            return Some(self.scratch.number(Number::from(n)));
        }
        self.serde_reading(self.text.get(start..start + len)?)
    }

    /// serde_json's value for a piece of the document (a number, or a string with escapes),
    /// read with this document's scratch lists rather than two new ones per piece.
    fn serde_reading(&mut self, piece: &'a str) -> Option<Value<'a>> {
        super::parse_with(serde_json::Deserializer::from_str(piece), &mut self.scratch).ok()
    }

    #[inline(never)]
    fn object(&mut self, depth: usize) -> Option<Value<'a>> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        let start = self.scratch.members.len();
        self.skip_whitespace();
        if self.peek()? == b'}' {
            self.pos += 1;
        } else {
            loop {
                if self.peek()? != b'"' {
                    return None;
                }
                let key = self.string()?;
                self.skip_whitespace();
                if self.peek()? != b':' {
                    return None;
                }
                self.pos += 1;
                self.skip_whitespace();
                let value = self.value(depth + 1)?;
                self.scratch.members.push((key, value));
                if self.end_of_item(b'}')? {
                    break;
                }
            }
        }
        Some(self.scratch.close_object(start))
    }

    #[inline(never)]
    fn array(&mut self, depth: usize) -> Option<Value<'a>> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        let start = self.scratch.items.len();
        self.skip_whitespace();
        if self.peek()? == b']' {
            self.pos += 1;
        } else {
            loop {
                let item = self.value(depth + 1)?;
                self.scratch.items.push(item);
                if self.end_of_item(b']')? {
                    break;
                }
            }
        }
        Some(self.scratch.close_array(start))
    }

    /// After a member or item: `Some(true)` at the closing byte, `Some(false)` after a comma
    /// (what follows it must then be a member or an item, so a trailing comma fails there),
    /// `None` on anything else.
    fn end_of_item(&mut self, close: u8) -> Option<bool> {
        self.skip_whitespace();
        let b = self.peek()?;
        self.pos += 1;
        match b {
            _ if b == close => Some(true),
            b',' => {
                self.skip_whitespace();
                Some(false)
            }
            _ => None,
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The first index at or after `from` holding a quote, a backslash or a control byte (or the
/// length). Eight bytes at a time: in each test the lowest flagged byte is a true match, so
/// the lowest flagged byte of the three is the first stop.
fn stop(bytes: &[u8], mut from: usize) -> usize {
    while let Some(chunk) = bytes.get(from..).and_then(<[u8]>::first_chunk::<8>) {
        let word = u64::from_le_bytes(*chunk);
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let found = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word);
        let found = found & HIGH_BITS;
        if found != 0 {
            return from + (found.trailing_zeros() / 8) as usize;
        }
        from += 8;
    }
    from + bytes
        .get(from..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&b| !matches!(b, b'"' | b'\\' | 0..=0x1f))
        .count()
}

#[cfg(test)]
#[path = "plain_tests.rs"]
mod tests;
