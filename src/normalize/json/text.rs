//! A string of the tree (a value or a key), and whether it was read as it stands.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Deref;

/// A string value or object key: its text, borrowed from the parsed document or from the
/// document's arena, and how it was read. Compares, orders and prints as its text.
#[derive(Debug, Clone, Copy)]
pub struct Text<'a> {
    text: &'a str,
    /// Read verbatim from the document, without any escape: then it has no quote, backslash
    /// or control character (JSON allows none of them unescaped, and serde_json rejects
    /// them), which lets the canonical writer copy it without looking.
    verbatim: bool,
}

impl<'a> Text<'a> {
    /// A string as it stood in the document, between its quotes, with no escape.
    pub(super) fn verbatim(text: &'a str) -> Self {
        Text {
            text,
            verbatim: true,
        }
    }

    /// A string that held an escape, unescaped: it may hold any character.
    pub(super) fn unescaped(text: &'a str) -> Self {
        Text {
            text,
            verbatim: false,
        }
    }

    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// Whether it needs no escape to be written back (see the field).
    pub fn is_verbatim(&self) -> bool {
        self.verbatim
    }
}

impl Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        self.text
    }
}

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        self.text
    }
}

impl PartialEq for Text<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Text<'_> {}

impl PartialOrd for Text<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.text.cmp(other.text)
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}
