//! The normalizer's JSON tree: serde_json's values, but strings borrowed from the payload,
//! objects kept as member lists, and the whole tree held in one arena per document.
//!
//! Why not `serde_json::Value`: it copies every key and string into its own allocation and
//! inserts every member into a `BTreeMap`, which was most of the time spent per event. Here
//! a string without escapes borrows the payload bytes, and an object is a slice in document
//! order (GitLab objects have tens of members, so a linear lookup behind a 64-bit filter of the
//! keys beats building a tree). Every slice, and every string that had to be unescaped, sits
//! in the caller's [`Arena`]: the tree costs one allocation per document and nothing to
//! drop, where an allocation per object and a walk of the whole tree to free it were about a
//! tenth of the parse (benches/README.md, "Twenty-first session").
//!
//! What is read is exactly what `serde_json::Value` would hold: [`from_str`] tries the plain
//! parser (`plain`), which reads GitLab's documents itself and hands every other piece or
//! document to serde_json, so the syntax errors, nesting limit, number types
//! (`serde_json::Number` from the same visitor calls) and string unescaping are serde_json's.
//! A key repeated in one object resolves to its last value, as
//! in serde_json's map, both in [`Map::get`] and in [`Map::sorted`], which gives the member
//! order of serde_json's (default, sorted) map; the normalizer and the collector never rely
//! on that, they refuse such a document ([`Value::first_duplicate_key`]). One difference, on
//! purpose: with the `raw_value` feature this crate enables, `serde_json::Value` treats an object whose first
//! key is serde_json's private token `$serde_json::private::RawValue` as an embedded document;
//! here it is an ordinary key, as the sender wrote it.

use std::fmt;
use std::fmt::Write as _;
use std::ops::Range;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
pub use serde_json::Number;

pub use text::Text;

mod plain;
mod text;

/// Where a document's tree lives; it must outlive the [`Value`] parsed into it.
pub type Arena = bumpalo::Bump;

/// An arena sized for a document of `len` bytes. The simulated traffic's documents take
/// 2.0–2.6 times their length as a tree (2.06 at the median), so three times lets nearly
/// every one be parsed without the arena growing; bounded, so a large document that turns
/// out to hold a few long strings does not reserve its size three times over.
pub fn arena_for(len: usize) -> Arena {
    Arena::with_capacity(len.saturating_mul(3).clamp(1024, 256 * 1024))
}

/// A JSON value borrowing its strings from the parsed text where it can, and everything else
/// from its document's [`Arena`].
///
/// `Copy`, and two words: the arena never runs destructors, so a value must own nothing; an
/// object's members are copied into the arena in one piece; and a value this small stays in
/// registers while it is parsed. A larger one was assembled on the stack and read back
/// before its stores had landed, a stall on nearly every member (benches/README.md,
/// "Twenty-first session").
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    /// A reference too (to a constant): a `bool` beside the tag made the compiler move values
    /// byte by byte.
    Bool(&'a bool),
    Number(&'a Number),
    String(&'a Text<'a>),
    Array(&'a Items<'a>),
    Object(&'a Map<'a>),
}

const _: () = assert!(std::mem::size_of::<Value<'static>>() == 16);

/// An array's items, behind one pointer (see [`Value`]).
#[derive(Debug, PartialEq)]
pub struct Items<'a>(&'a [Value<'a>]);

impl<'a> std::ops::Deref for Items<'a> {
    type Target = [Value<'a>];

    fn deref(&self) -> &[Value<'a>] {
        self.0
    }
}

/// A JSON object's members in document order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map<'a> {
    members: &'a [(Text<'a>, Value<'a>)],
    /// One bit per key's [`key_hint`] (modulo 64): a key whose bit is clear is not here, and
    /// `get` answers without looking at the members. The readers ask for many keys an event
    /// does not have (`project_id`, `group_id`, `user_id` beside `entity_id`, fallbacks).
    key_bits: u64,
    /// The first duplicate key in this object or below ([`Value::first_duplicate_key`]),
    /// found once when the object is made, so asking does not walk the tree again.
    duplicate: Option<&'a DuplicateAt<'a>>,
}

/// A [`DuplicateKey`] held in the arena.
#[derive(Debug, PartialEq)]
struct DuplicateAt<'a> {
    path: &'a str,
    key: &'a str,
}

/// Parses one JSON document (serde_json's grammar and errors) into `arena`.
pub fn from_slice<'a>(bytes: &'a [u8], arena: &'a Arena) -> serde_json::Result<Value<'a>> {
    parse(serde_json::Deserializer::from_slice(bytes), arena)
}

/// Parses one JSON document held in a string into `arena`: the plain parser's tree when it
/// reads the whole document, else serde_json's value or error (see `plain`).
pub fn from_str<'a>(text: &'a str, arena: &'a Arena) -> serde_json::Result<Value<'a>> {
    match plain::parse(text, arena) {
        Some(value) => Ok(value),
        None => parse(serde_json::Deserializer::from_str(text), arena),
    }
}

/// [`from_str`] into an arena that is never freed, for tests.
#[cfg(test)]
pub(crate) fn from_str_leaking(text: &str) -> serde_json::Result<Value<'_>> {
    from_str(text, leaked_arena())
}

#[cfg(test)]
fn leaked_arena() -> &'static Arena {
    Box::leak(Box::new(Arena::new()))
}

/// What `serde_json::from_str` does (one value, then only whitespace), with one scratch list
/// for the whole document.
fn parse<'de, R: serde_json::de::Read<'de>>(
    de: serde_json::Deserializer<R>,
    arena: &'de Arena,
) -> serde_json::Result<Value<'de>> {
    parse_with(de, &mut Scratch::for_document(arena))
}

/// [`parse`] with the scratch lists (and arena) of a document already being read: the plain
/// parser's pieces are strings and numbers, which push nothing onto them.
fn parse_with<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    scratch: &mut Scratch<'de>,
) -> serde_json::Result<Value<'de>> {
    let value = ValueSeed(scratch).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

impl<'a> Value<'a> {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&'a Map<'a>> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&'a [Value<'a>]> {
        match self {
            Value::Array(items) => Some(items.0),
            _ => None,
        }
    }
}

/// A key that appears twice in one object, and where: `path` is the dotted path of the object
/// holding it (`details`, `[2].details`; empty for the top level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    pub path: String,
    pub key: String,
}

/// Longest reason text: it travels as a Kafka header and an HTTP answer, and keys and paths
/// are the sender's text.
const MAX_REASON_CHARS: usize = 200;

impl fmt::Display for DuplicateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `{:?}` shows control characters in the key escaped.
        let text = if self.path.is_empty() {
            format!("duplicate key {:?}", self.key)
        } else {
            format!("duplicate key {:?} in {}", self.key, self.path)
        };
        match text.char_indices().nth(MAX_REASON_CHARS) {
            Some((end, _)) => write!(f, "{}…", &text[..end]),
            None => f.write_str(&text),
        }
    }
}

impl Value<'_> {
    /// The first key repeated inside one object, at any depth: an object's own repeated key
    /// before any below it, then its members' in document order. Two values for one field
    /// make an audit record ambiguous (which `author_id` acted?), and parsers disagree on
    /// which one wins, so both the collector and the normalizer refuse the document instead
    /// of picking one.
    pub fn first_duplicate_key(&self) -> Option<DuplicateKey> {
        match self {
            Value::Object(map) => map.first_duplicate_key(),
            Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
                item.first_duplicate_key()
                    .map(|d| d.nested(&format!("[{i}]")))
            }),
            _ => None,
        }
    }

    /// Whether [`Value::first_duplicate_key`] finds one, without making it.
    #[inline]
    fn holds_duplicate(&self) -> bool {
        match self {
            Value::Object(map) => map.duplicate.is_some(),
            Value::Array(items) => items.iter().any(Value::holds_duplicate),
            _ => false,
        }
    }
}

impl DuplicateKey {
    /// `key` repeated in the object at hand.
    fn here(key: &str) -> DuplicateKey {
        DuplicateKey {
            path: String::new(),
            key: key.to_owned(),
        }
    }

    /// This duplicate seen from one level up, `step` being how that level reaches it.
    fn nested(self, step: &str) -> DuplicateKey {
        let path = if self.path.is_empty() || self.path.starts_with('[') {
            format!("{step}{}", self.path)
        } else {
            format!("{step}.{}", self.path)
        };
        DuplicateKey {
            path,
            key: self.key,
        }
    }
}

impl<'a> Map<'a> {
    pub fn new() -> Self {
        Map::default()
    }

    /// An object of `members`, in document order, copied into `arena`; its first duplicate
    /// key is found here. The members' own objects already know theirs, so this looks one
    /// level down (and through arrays), not at the whole tree.
    fn from_members(arena: &'a Arena, members: &[(Text<'a>, Value<'a>)]) -> Self {
        let members: &'a [(Text<'a>, Value<'a>)] = arena.alloc_slice_copy(members);
        let key_bits = members.iter().fold(0, |bits, (key, _)| bits | key_bit(key));
        let mut map = Map {
            members,
            key_bits,
            duplicate: None,
        };
        let duplicate = match map.first_repeated_key() {
            Some(key) => Some(DuplicateKey::here(key)),
            None => members
                .iter()
                .filter(|(_, value)| value.holds_duplicate())
                .find_map(|(key, value)| value.first_duplicate_key().map(|d| d.nested(key))),
        };
        map.duplicate = duplicate.map(|d| {
            &*arena.alloc(DuplicateAt {
                path: arena.alloc_str(&d.path),
                key: arena.alloc_str(&d.key),
            })
        });
        map
    }

    /// See [`Value::first_duplicate_key`].
    pub fn first_duplicate_key(&self) -> Option<DuplicateKey> {
        self.duplicate.map(|d| DuplicateKey {
            path: d.path.to_owned(),
            key: d.key.to_owned(),
        })
    }

    /// The first key (in document order) that an earlier member already has. GitLab objects
    /// have tens of members, where a scan without allocation is cheapest; a hostile object
    /// with a million members must not make it quadratic, so larger ones use a set.
    fn first_repeated_key(&self) -> Option<&str> {
        const SCAN_UP_TO: usize = 32;
        // Equal keys share a bit of `key_bits`, so as many bits as members means no repeat:
        // most objects are settled without comparing keys.
        if self.key_bits.count_ones() as usize == self.members.len() {
            return None;
        }
        let mut keys = self.members.iter().map(|(k, _)| k.as_str());
        if self.members.len() <= SCAN_UP_TO {
            // A 64-bit filter on (length, first byte, last byte): only a key whose bit is
            // already set can repeat an earlier one, and only then are the keys compared.
            let mut seen = 0u64;
            return keys
                .enumerate()
                .find(|&(i, key)| {
                    let bit = key_bit(key);
                    let maybe = seen & bit != 0;
                    seen |= bit;
                    maybe && self.members[..i].iter().any(|(k, _)| k.as_str() == key)
                })
                .map(|(_, key)| key);
        }
        let mut seen = std::collections::HashSet::with_capacity(self.members.len());
        keys.find(|key| !seen.insert(*key))
    }

    /// The value of `key`; for a repeated key, the last one (serde_json keeps the last too).
    pub fn get(&self, key: &str) -> Option<&'a Value<'a>> {
        if self.key_bits & key_bit(key) == 0 {
            return None;
        }
        // GitLab's keys are short and many have the same length: the first byte settles most
        // comparisons without a call to `memcmp` (1.2 % of the in-process samples).
        let want = key.as_bytes();
        self.members
            .iter()
            .rev()
            .find(|(k, _)| {
                let k = k.as_bytes();
                k.len() == want.len() && k.first() == want.first() && k == want
            })
            .map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The effective members sorted bytewise by key, each key once with its last value: the
    /// iteration order of serde_json's default `Map`.
    pub fn sorted(&self) -> SortedMembers<'a> {
        // Objects of one kind repeat their keys in the same order, so the order found for the
        // last object with the same keys' filter is tried first: if it lists the keys strictly
        // increasing, it is the sorted order with no key repeated, whatever object it came
        // from; otherwise the members are sorted (benches/README.md, "Twenty-third session").
        // A recalled order is copied out, not collected into a list: no allocation
        // (benches/README.md, "Twenty-fourth session").
        if let Some((order, len)) = member_order::recalled(self) {
            return SortedMembers::Recalled {
                members: self.members,
                order: order.into_iter().take(len),
            };
        }
        let mut entries: Vec<SortEntry<'a>> = self
            .members
            .iter()
            .enumerate()
            .map(|(at, (k, v))| (order_key(k), at as u32, k, v))
            .collect();
        // Stable: members with equal keys stay in document order, so the last one of each run
        // is the one serde_json would have kept.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let all = entries.len();
        entries.dedup_by(|later, earlier| {
            if later.2 == earlier.2 {
                *earlier = *later;
                true
            } else {
                false
            }
        });
        if entries.len() == all {
            member_order::remember(self, entries.iter().map(|e| e.1));
        }
        SortedMembers::Sorted(entries.into_iter())
    }
}

/// The members [`Map::sorted`] yields, in order.
pub enum SortedMembers<'a> {
    /// A remembered order that lists this object's keys strictly increasing.
    Recalled {
        members: &'a [(Text<'a>, Value<'a>)],
        order: std::iter::Take<std::array::IntoIter<u8, { member_order::MAX_MEMBERS }>>,
    },
    /// This object's own sorted members.
    Sorted(std::vec::IntoIter<SortEntry<'a>>),
}

/// A member as [`Map::sorted`] sorts it: its [`order_key`], its place in the document, the
/// key and the value.
type SortEntry<'a> = ((u64, &'a str), u32, &'a Text<'a>, &'a Value<'a>);

impl<'a> Iterator for SortedMembers<'a> {
    type Item = (&'a Text<'a>, &'a Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            SortedMembers::Recalled { members, order } => {
                let (key, value) = &members[usize::from(order.next()?)];
                Some((key, value))
            }
            SortedMembers::Sorted(entries) => entries.next().map(|(_, _, k, v)| (k, v)),
        }
    }
}

/// The member order last found for objects with the same keys' filter ([`Map::sorted`]).
mod member_order {
    use std::cell::RefCell;

    use super::{Map, order_key};

    /// Objects larger than this are always sorted (their order is not kept).
    pub(super) const MAX_MEMBERS: usize = 64;
    const SLOTS: usize = 64;

    #[derive(Default)]
    struct Slot {
        key_bits: u64,
        order: Vec<u8>,
    }

    thread_local! {
        static RECALLED: RefCell<Vec<Slot>> = RefCell::new(
            std::iter::repeat_with(Slot::default).take(SLOTS).collect(),
        );
    }

    fn slot(map: &Map<'_>) -> usize {
        let mix = (map.key_bits ^ map.members.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mix >> 58) as usize
    }

    /// The order remembered for `map`'s slot (indices into its members, and how many), when
    /// it lists `map`'s keys strictly increasing; `None` otherwise. Copied out, because the
    /// members' values are written (and their objects' orders remembered) while it is used.
    pub(super) fn recalled(map: &Map<'_>) -> Option<([u8; MAX_MEMBERS], usize)> {
        let n = map.members.len();
        if n > MAX_MEMBERS {
            return None;
        }
        RECALLED.with_borrow(|slots| {
            let slot = &slots[slot(map)];
            if slot.key_bits != map.key_bits || slot.order.len() != n {
                return None;
            }
            let mut order = [0; MAX_MEMBERS];
            let mut previous = None;
            for (i, &at) in slot.order.iter().enumerate() {
                let (key, _) = map.members.get(usize::from(at))?;
                let this = order_key(key);
                if previous.is_some_and(|previous| previous >= this) {
                    return None;
                }
                previous = Some(this);
                order[i] = at;
            }
            Some((order, n))
        })
    }

    /// Keeps `order` (indices into `map`'s members, every one once) for the next object in
    /// `map`'s slot.
    pub(super) fn remember(map: &Map<'_>, order: impl Iterator<Item = u32>) {
        if map.members.len() > MAX_MEMBERS {
            return;
        }
        RECALLED.with_borrow_mut(|slots| {
            let slot = &mut slots[slot(map)];
            slot.key_bits = map.key_bits;
            slot.order.clear();
            slot.order.extend(order.map(|at| at as u8));
        });
    }
}

/// What members are sorted by: the key's first eight bytes as a number, then the whole key,
/// which orders keys bytewise. GitLab's keys mostly differ early, so most comparisons are one
/// integer compare instead of a call to `memcmp` (sorting was 2.5 % of ingest's samples).
fn order_key<'k>(key: &'k Text<'_>) -> (u64, &'k str) {
    (key_prefix(key), key.as_str())
}

/// A key's first eight bytes, zero-padded, as a big-endian number. Two keys whose numbers
/// differ compare as their numbers do; equal numbers leave the order to the whole keys.
fn key_prefix(key: &str) -> u64 {
    let bytes = key.as_bytes();
    if let Some(head) = bytes.first_chunk::<8>() {
        return u64::from_be_bytes(*head);
    }
    // Shorter keys byte by byte: a copy of a variable length is a call to `memcpy`.
    bytes
        .iter()
        .enumerate()
        .fold(0, |prefix, (i, &b)| prefix | u64::from(b) << (56 - 8 * i))
}

/// A key's bit in a 64-bit filter: equal keys have the same bit.
fn key_bit(key: &str) -> u64 {
    1u64 << (key_hint(key) % 64)
}

/// Equal keys give equal hints.
fn key_hint(key: &str) -> u32 {
    let b = key.as_bytes();
    let (first, last) = (b.first().copied(), b.last().copied());
    (b.len() as u32)
        .wrapping_mul(31)
        .wrapping_add(u32::from(first.unwrap_or(0)) * 7)
        .wrapping_add(u32::from(last.unwrap_or(0)))
}

/// Compact JSON text with object keys sorted, as `serde_json::Value`'s `Display` writes it.
impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = String::new();
        write_value(&mut buf, self);
        f.write_str(&buf)
    }
}

/// Members and items of the objects and arrays still open, on one stack per document: each
/// object or array is then copied into the arena once, at its exact size, when it closes.
/// Why: a list grown member by member (or reserved at a guess) touched several times the
/// memory it kept, and the tree was the largest part of the in-process path
/// (benches/README.md, "Seventh session").
struct Scratch<'de> {
    members: Vec<(Text<'de>, Value<'de>)>,
    items: Vec<Value<'de>>,
    /// Where each object and array goes when it closes.
    arena: &'de Arena,
}

impl Scratch<'_> {
    /// Room for the members open at once in a GitLab audit event (its top level and
    /// `details`, each tens of members), so these two stacks, not the objects' lists, are
    /// allocated once per document instead of doubling from empty (benches/README.md,
    /// "Eleventh session").
    const MEMBERS: usize = 64;
    const ITEMS: usize = 16;

    fn for_document(arena: &Arena) -> Scratch<'_> {
        Scratch {
            members: Vec::with_capacity(Self::MEMBERS),
            items: Vec::with_capacity(Self::ITEMS),
            arena,
        }
    }
}

impl<'de> Scratch<'de> {
    /// The object whose members are on the stack from `start`, copied into the arena in one
    /// piece (moving them one by one was slower than the allocations the arena saves).
    fn close_object(&mut self, start: usize) -> Value<'de> {
        let map = Map::from_members(self.arena, &self.members[start..]);
        self.members.truncate(start);
        Value::Object(self.arena.alloc(map))
    }

    /// The array whose items are on the stack from `start`, as [`Scratch::close_object`].
    fn close_array(&mut self, start: usize) -> Value<'de> {
        let items = self.arena.alloc_slice_copy(&self.items[start..]);
        self.items.truncate(start);
        Value::Array(self.arena.alloc(Items(items)))
    }

    fn number(&self, n: Number) -> Value<'de> {
        Value::Number(self.arena.alloc(n))
    }

    fn string(&self, text: Text<'de>) -> Value<'de> {
        Value::String(self.arena.alloc(text))
    }
}

struct ValueSeed<'s, 'de>(&'s mut Scratch<'de>);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, 'de> {
    type Value = Value<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value<'de>, D::Error> {
        d.deserialize_any(ValueVisitor(self.0))
    }
}

struct ValueVisitor<'s, 'de>(&'s mut Scratch<'de>);

impl<'de> Visitor<'de> for ValueVisitor<'_, 'de> {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value<'de>, E> {
        Ok(Value::Bool(if v { &true } else { &false }))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value<'de>, E> {
        Ok(self.0.number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value<'de>, E> {
        Ok(self.0.number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value<'de>, E> {
        // As serde_json::Value: a non-finite float is null.
        Ok(Number::from_f64(v).map_or(Value::Null, |n| self.0.number(n)))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(self.0.string(Text::verbatim(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(self.0.string(Text::unescaped(self.0.arena.alloc_str(v))))
    }

    fn visit_none<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value<'de>, D::Error> {
        ValueSeed(self.0).deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        let scratch = self.0;
        let start = scratch.items.len();
        while let Some(item) = seq.next_element_seed(ValueSeed(scratch))? {
            scratch.items.push(item);
        }
        Ok(scratch.close_array(start))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
        let scratch = self.0;
        let start = scratch.members.len();
        while let Some(key) = map.next_key_seed(KeySeed(scratch.arena))? {
            let value = map.next_value_seed(ValueSeed(scratch))?;
            scratch.members.push((key, value));
        }
        Ok(scratch.close_object(start))
    }
}

/// Object keys, borrowed when they contain no escapes, else unescaped into the arena.
struct KeySeed<'de>(&'de Arena);

impl<'de> DeserializeSeed<'de> for KeySeed<'de> {
    type Value = Text<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeyVisitor(self.0))
    }
}

struct KeyVisitor<'de>(&'de Arena);

impl<'de> Visitor<'de> for KeyVisitor<'de> {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text::verbatim(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text::unescaped(self.0.alloc_str(v)))
    }
}

// Canonical text: what the dedup keys hash and what `Display` prints.

/// Canonical compact JSON text: object keys sorted bytewise at every level, each key once
/// (its last value), i.e. what `serde_json::to_string` writes for a default `serde_json::Value`
/// (kept explicit so keys stay sorted even if some crate in the final build turns on
/// serde_json's `preserve_order` feature; features are unified per build).
pub fn canonical_json(v: &Value<'_>) -> String {
    let mut buf = String::new();
    write_value(&mut buf, v);
    buf
}

/// [`canonical_json`] of an object, without wrapping it into a `Value`.
pub fn canonical_object(map: &Map<'_>) -> String {
    let mut buf = String::new();
    write_object(&mut buf, map, None, None);
    buf
}

/// The writers append to a `String`: what they write is text already (parsed strings,
/// serde_json's output, ASCII punctuation), so it is never checked as UTF-8 again (that check
/// was 0.4 % of a backlog's samples in `audit_key_and_details` alone, benches/README.md,
/// "Twenty-fifth session").
pub fn write_value(out: &mut String, v: &Value<'_>) {
    match v {
        Value::Object(map) => {
            write_object(out, map, None, None);
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        // serde_json's number formatting: its `Display` is the `itoa`/`ryu` text its writer
        // writes (`numbers_are_written_as_serde_json_writes_them`). Writing into a String
        // cannot fail.
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_text(out, s),
    }
}

/// A parsed string as serde_json writes it. One read verbatim from the parsed text needs no
/// escape (see [`Text`]) and is copied without looking: the escape check was the canonical
/// writer's largest part (benches/README.md, "Eighth session").
fn write_text(out: &mut String, s: &Text<'_>) {
    if s.is_verbatim() {
        // Every test run (debug builds) checks the invariant the release build relies on.
        debug_assert!(!needs_escape(s.as_bytes()), "verbatim text {s:?}");
        write_quoted(out, s)
    } else {
        write_str(out, s)
    }
}

/// A JSON string as serde_json writes it. Most strings need no escape and are copied whole;
/// the others go through serde_json's escaper.
fn write_str(out: &mut String, s: &str) {
    if needs_escape(s.as_bytes()) {
        // A string that needs an escape (quotes, line breaks in a message): serde_json's escaper,
        // through a string of its own.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
        return;
    }
    write_quoted(out, s);
}

/// `s` between quotes, as it is: only for text that needs no escape.
fn write_quoted(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    out.push_str(s);
    out.push('"');
}

/// Whether serde_json escapes any byte of `bytes`: `"`, `\\` and the control bytes below 0x20.
///
/// Why blocks of 16 with no early exit inside one: the compiler turns such a block into a few
/// vector compares, where `Iterator::any` tests byte by byte (3 % of the in-process path's
/// samples; benches/README.md, "Seventh session"). The last block overlaps the one before
/// instead of being tested byte by byte.
fn needs_escape(bytes: &[u8]) -> bool {
    const BLOCK: usize = 16;
    let escaped_in = |block: &[u8]| {
        block.iter().fold(false, |hit, &b| {
            hit | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    };
    if bytes.len() < BLOCK {
        return escaped_in(bytes);
    }
    bytes.chunks_exact(BLOCK).any(escaped_in) || escaped_in(&bytes[bytes.len() - BLOCK..])
}

/// Writes `map` without the member `skip`; returns where the value of member `capture` was
/// written, if it was.
pub fn write_object(
    out: &mut String,
    map: &Map<'_>,
    skip: Option<&str>,
    capture: Option<&str>,
) -> Option<Range<usize>> {
    let mut captured = None;
    out.push('{');
    let mut first = true;
    for (k, v) in map.sorted() {
        if Some(k.as_str()) == skip {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        write_text(out, k);
        out.push(':');
        let start = out.len();
        write_value(out, v);
        if Some(k.as_str()) == capture {
            captured = Some(start..out.len());
        }
    }
    out.push('}');
    captured
}

/// `serde_json::json!`, converted to a [`Value`], for tests.
#[cfg(test)]
macro_rules! json {
    ($($t:tt)+) => {
        $crate::normalize::json::Value::from(&serde_json::json!($($t)+))
    };
}
#[cfg(test)]
pub(crate) use json;

#[cfg(test)]
impl From<&serde_json::Value> for Value<'static> {
    /// For tests written with `serde_json::json!`: built in one leaked arena through the
    /// parsers' own [`Scratch`], as a parsed document is.
    fn from(v: &serde_json::Value) -> Self {
        fn build(v: &serde_json::Value, scratch: &mut Scratch<'static>) -> Value<'static> {
            match v {
                serde_json::Value::Null => Value::Null,
                serde_json::Value::Bool(b) => Value::Bool(if *b { &true } else { &false }),
                serde_json::Value::Number(n) => scratch.number(n.clone()),
                serde_json::Value::String(s) => {
                    scratch.string(Text::unescaped(scratch.arena.alloc_str(s)))
                }
                serde_json::Value::Array(items) => {
                    let start = scratch.items.len();
                    for item in items {
                        let item = build(item, scratch);
                        scratch.items.push(item);
                    }
                    scratch.close_array(start)
                }
                serde_json::Value::Object(m) => {
                    let start = scratch.members.len();
                    for (k, v) in m {
                        let key = Text::unescaped(scratch.arena.alloc_str(k));
                        let value = build(v, scratch);
                        scratch.members.push((key, value));
                    }
                    scratch.close_object(start)
                }
            }
        }
        build(v, &mut Scratch::for_document(leaked_arena()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_str(text: &str) -> serde_json::Result<Value<'_>> {
        from_str_leaking(text)
    }

    /// Every value, re-rendered, equals serde_json's own rendering of the same text.
    #[test]
    fn reads_what_serde_json_reads() {
        let texts = [
            r#"{"b":1,"a":[1,-2,3.5,1e3,-0,18446744073709551615,-9223372036854775808],"c":null}"#,
            r#"{"s":"plain","e":"esc\"aped\u00e9\n","\u0061b":"escaped key","k":true,"k":false}"#,
            r#"[{"z":{"y":{"x":[]}}},"x",{},[],1.0,0.1,2.5e-8]"#,
            r#"  "top-level string"  "#,
        ];
        for text in texts {
            let ours = from_str(text).unwrap().to_string();
            let theirs = serde_json::from_str::<serde_json::Value>(text)
                .unwrap()
                .to_string();
            assert_eq!(ours, theirs, "{text}");
        }
    }

    /// The fast path copies strings without escapes; both paths write serde_json's text for
    /// every character class, at every position of a block.
    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut cases: Vec<String> = (0u32..0x100)
            .filter_map(char::from_u32)
            .flat_map(|c| (0..18).map(move |at| format!("{}{c}{}", "a".repeat(at), "b".repeat(5))))
            .collect();
        cases.extend([
            "".into(),
            "x".repeat(33),
            "é😀\u{7f}".into(),
            "\u{2028}".into(),
        ]);
        for s in cases {
            let mut ours = String::new();
            write_str(&mut ours, &s);
            let expected = serde_json::to_string(&s).unwrap();
            assert_eq!(ours, expected, "{s:?}");
            // The same string parsed (borrowed unless it was escaped), as a value and as a key.
            assert_eq!(
                canonical_json(&from_str(&expected).unwrap()),
                expected,
                "{s:?}"
            );
            let object = format!("{{{expected}:1}}");
            let direct: serde_json::Value = serde_json::from_str(&object).unwrap();
            assert_eq!(
                canonical_json(&from_str(&object).unwrap()),
                direct.to_string(),
                "{s:?}"
            );
        }
    }

    /// Numbers are written with `Display`, not serde_json's writer: both must give the same
    /// text, or stream-only events' content keys would change.
    #[test]
    fn numbers_are_written_as_serde_json_writes_them() {
        let texts = [
            "0",
            "7",
            "-0",
            "-1",
            "18446744073709551615",
            "-9223372036854775808",
            "1.5",
            "-2.25e-7",
            "1e21",
            "1E+2",
            "0.1",
            "3.141592653589793",
            "5e-324",
            "1.7976931348623157e308",
            "123456789012345678901234567890",
            "-0.0",
            "100000000000000000000",
        ];
        for text in texts {
            let ours = canonical_json(&from_str(text).unwrap());
            let expected =
                serde_json::to_string(&serde_json::from_str::<serde_json::Value>(text).unwrap())
                    .unwrap();
            assert_eq!(ours, expected, "{text}");
        }
    }

    /// A verbatim string that would need an escape breaks the writer's invariant; test
    /// builds stop on it instead of writing a quote unescaped.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "verbatim text")]
    fn a_verbatim_string_that_needs_an_escape_is_caught() {
        canonical_json(&Value::String(&Text::verbatim("a\"b")));
    }

    /// Keys whose filter bits collide are still compared, and only a true repeat is found.
    #[test]
    fn the_duplicate_filter_never_hides_a_repeat() {
        // Same length, first and last byte: same hint, different keys.
        let v = from_str(r#"{"axc":1,"ayc":2,"azc":3}"#).unwrap();
        assert_eq!(v.first_duplicate_key(), None);
        let keys: Vec<String> = (0..32).map(|i| format!("k{i:02}")).collect();
        for repeat in 0..32 {
            let mut members: Vec<String> = keys.iter().map(|k| format!("\"{k}\":0")).collect();
            members[31] = format!("\"{}\":1", keys[repeat.min(30)]);
            let text = format!("{{{}}}", members.join(","));
            let v = from_str(&text).unwrap();
            assert_eq!(v.first_duplicate_key().unwrap().key, keys[repeat.min(30)]);
        }
    }

    #[test]
    fn same_syntax_errors_as_serde_json() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for bad in [
            "{",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            "[1] x",
            r#""\ud800""#,
            "1e400",
            "nul",
            deep.as_str(),
        ] {
            let ours = from_str(bad).unwrap_err().to_string();
            let theirs = serde_json::from_str::<serde_json::Value>(bad)
                .unwrap_err()
                .to_string();
            assert_eq!(ours, theirs, "{bad}");
        }
    }

    /// The integer prefixes order keys exactly as comparing the whole keys does, including
    /// keys that share eight bytes, keys that are prefixes of others, zero bytes (written as
    /// `\u0000`) and multi-byte characters.
    #[test]
    fn members_sort_bytewise_by_key() {
        let keys = [
            "target_details",
            "target_id",
            "target",
            "a",
            "",
            r"ab\u0000",
            "ab",
            r"ab\u0000c",
            "é",
            "e",
            "zzzzzzzzz",
            "zzzzzzzz",
            "zzzzzzzzy",
            "AUTHOR",
            "author_id",
            "author_i",
        ];
        let text = numbered_object(&keys);
        let v = from_str(&text).unwrap();
        let ours: Vec<String> = v
            .as_object()
            .unwrap()
            .sorted()
            .map(|(k, _)| k.to_string())
            .collect();
        let mut expected: Vec<String> = v
            .as_object()
            .unwrap()
            .members
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        expected.sort();
        assert_eq!(ours, expected);
        let direct: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(canonical_json(&v), direct.to_string());
    }

    /// `{"<keys[0]>":0,"<keys[1]>":1,…}`: each key's value is its position.
    fn numbered_object(keys: &[impl AsRef<str>]) -> String {
        let members: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("\"{}\":{i}", k.as_ref()))
            .collect();
        format!("{{{}}}", members.join(","))
    }

    /// The key filter never hides a key that is there, in objects with more keys than bits,
    /// and keys that are absent are not found.
    #[test]
    fn every_key_is_found_and_only_those() {
        for count in [0, 1, 7, 33, 100] {
            // Varied first and last bytes and lengths, so the keys spread over the bits.
            let letter = |n: usize| char::from(b'a' + (n % 26) as u8);
            let keys: Vec<String> = (0..count)
                .map(|i| format!("{}{i}{}", letter(i * 7), letter(i * 11 + 3)))
                .collect();
            let text = numbered_object(&keys);
            let v = from_str(&text).unwrap();
            let m = v.as_object().unwrap();
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(m.get(k), Some(&Value::Number(&i.into())), "{k} of {count}");
            }
            for absent in (0..200).map(|i| format!("{}{i}_{}", letter(i * 5), letter(i))) {
                assert_eq!(m.get(&absent), None, "{absent} of {count}");
            }
        }
    }

    /// Objects whose keys share one filter bit (same length, first and last byte) and count
    /// find each other's remembered order: it is used only where it sorts their own keys.
    #[test]
    fn a_remembered_member_order_is_used_only_where_it_sorts_the_keys() {
        for text in [
            r#"{"ayb":1,"axb":2}"#,
            r#"{"axb":1,"ayb":2}"#,
            r#"{"azb":1,"axb":2}"#,
            r#"{"axb":1,"axb":2}"#,
            r#"{"ayb":1,"axb":2}"#,
            r#"{"ayb":1,"axb":2}"#,
        ] {
            let ours = from_str(text).unwrap();
            let keys: Vec<&str> = ours
                .as_object()
                .unwrap()
                .sorted()
                .map(|(k, _)| k.as_str())
                .collect();
            let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
            let expected: Vec<&str> = theirs
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            assert_eq!(keys, expected, "{text}");
            assert_eq!(ours.to_string(), theirs.to_string(), "{text}");
        }
    }

    #[test]
    fn repeated_keys_resolve_to_the_last_value() {
        let v = from_str(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        let m = v.as_object().unwrap();
        assert_eq!(m.get("a"), Some(&Value::Number(&3.into())));
        let keys: Vec<&str> = m.sorted().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(v.to_string(), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn finds_the_first_duplicate_key_at_any_depth() {
        let dup = |text: &str| from_str(text).unwrap().first_duplicate_key();
        assert_eq!(dup(r#"{"a":1,"b":{"a":2},"c":[{"a":3}]}"#), None);
        let top = dup(r#"{"author_id":1,"x":2,"author_id":666}"#).unwrap();
        assert_eq!(top.to_string(), r#"duplicate key "author_id""#);
        let nested = dup(r#"{"details":{"author_name":"a","author_name":"b"}}"#).unwrap();
        assert_eq!(
            nested.to_string(),
            r#"duplicate key "author_name" in details"#
        );
        let deep = dup(r#"[{"ok":1},{"d":{"l":[0,{"k":1,"k":2}]}}]"#).unwrap();
        assert_eq!(deep.to_string(), r#"duplicate key "k" in [1].d.l[1]"#);
        // The same key spelled with an escape is the same key once unescaped.
        assert_eq!(dup(r#"{"a":1,"\u0061":2}"#).unwrap().key, "a");
        // Large objects take the set path; hostile keys stay short and escaped in the reason.
        let mut big: Vec<String> = (0..5000).map(|i| format!("\"k{i}\":{i}")).collect();
        big.push(format!("\"\\u001b[31m{}\":0", "x".repeat(1000)));
        big.push(format!("\"\\u001b[31m{}\":1", "x".repeat(1000)));
        let found = dup(&format!("{{{}}}", big.join(","))).unwrap();
        let reason = found.to_string();
        assert!(
            reason.starts_with("duplicate key \"\\u{1b}[31mxxx"),
            "{reason}"
        );
        assert!(
            reason.ends_with('…') && reason.chars().count() == 201,
            "{reason}"
        );
        assert_eq!(dup(&format!("{{{}}}", big[..5001].join(","))), None);
    }

    /// The duplicate found while parsing is the one a walk of the finished tree finds: an
    /// object's own repeated key first, then its members' in document order, through arrays.
    #[test]
    fn the_duplicate_found_while_parsing_is_the_first_one_a_walk_finds() {
        fn walk(v: &Value<'_>) -> Option<DuplicateKey> {
            match v {
                Value::Object(map) => match map.first_repeated_key() {
                    Some(key) => Some(DuplicateKey::here(key)),
                    None => map
                        .members
                        .iter()
                        .find_map(|(k, v)| walk(v).map(|d| d.nested(k))),
                },
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| walk(v).map(|d| d.nested(&format!("[{i}]")))),
                _ => None,
            }
        }
        let docs = [
            r#"{"a":{"x":1,"x":2},"b":1,"b":2}"#,
            r#"{"a":{"x":1,"x":2},"c":[{"y":1,"y":2}]}"#,
            r#"{"c":[[{"ok":1}],[{"y":1},{"z":[{"w":0,"w":1}]}]],"a":{"x":1,"x":2}}"#,
            r#"[[{"a":1}],{"b":{"c":{"d":1,"d":2}}},{"e":1,"e":1}]"#,
            r#"{"a":[],"b":{},"c":[[[]]],"d":null}"#,
        ];
        for text in docs {
            let v = from_str(text).unwrap();
            assert_eq!(v.first_duplicate_key(), walk(&v), "{text}");
        }
        let outer = from_str(docs[0]).unwrap().first_duplicate_key().unwrap();
        assert_eq!((outer.path.as_str(), outer.key.as_str()), ("", "b"));
        let deep = from_str(docs[2]).unwrap().first_duplicate_key().unwrap();
        assert_eq!(deep.to_string(), r#"duplicate key "w" in c[1][1].z[0]"#);
    }

    /// `arena_for` leaves room for the whole tree of every simulated document, so parsing one
    /// allocates once (with twice the length, 246 of the 14,175 documents of 2,000 jobs grew
    /// their arena).
    #[test]
    fn a_simulated_documents_tree_fits_the_arena_made_for_it() {
        let (messages, _) = crate::simulate::generate(&crate::simulate::SimConfig {
            jobs: 300,
            ..Default::default()
        });
        let mut parsed = 0;
        for m in &messages {
            let Ok(text) = std::str::from_utf8(&m.payload) else {
                continue;
            };
            let arena = arena_for(text.len());
            let reserved = arena.allocated_bytes();
            if super::from_str(text, &arena).is_ok() {
                parsed += 1;
                assert_eq!(arena.allocated_bytes(), reserved, "{text}");
            }
        }
        assert!(parsed > 1000, "{parsed}");
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let text = r#"{"plain":"text","esc":"a\tb"}"#;
        let v = from_str(text).unwrap();
        let m = v.as_object().unwrap();
        let Some(Value::String(plain)) = m.get("plain") else {
            panic!("{m:?}")
        };
        assert!(plain.is_verbatim());
        assert!(text.as_bytes().as_ptr_range().contains(&plain.as_ptr()));
        let Some(Value::String(escaped)) = m.get("esc") else {
            panic!("{m:?}")
        };
        assert!(!escaped.is_verbatim());
        assert_eq!(escaped.as_str(), "a\tb");
    }
}
