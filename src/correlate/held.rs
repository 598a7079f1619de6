//! How many items the join holds, and which one is the oldest (the one `max_pending` evicts).
//!
//! Why not an ordered map of every held item by `(t, seq)`: inserting each item and removing
//! it again once decided was 14 % of the correlator's samples on its dense bench case, at
//! every event (benches/README.md, "Twenty-fifth session"), while the oldest item is only
//! asked for when the join is full. So the order is kept only while the join is near its
//! bound: the first eviction builds a min-heap of what is held, and the heap is dropped again
//! once the join holds less than half its bound. Meanwhile an item costs a push (events
//! arrive mostly in time order, so the push rarely moves anything); a decided item's entry
//! leaves lazily, when it reaches the top or when decided entries outnumber held ones.
//! Whether an entry is still held is the join's to say (`is_held`), from its own lists.
//! Without a heap (before the first eviction, and after the join has emptied below half its
//! bound) an item costs a count.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Decided entries are swept once the heap is this much larger than twice what is held.
const SLACK: usize = 64;

/// A held item's time, arrival sequence and key (the join's `Item::t`, `Item::seq`, key id).
pub type Entry = (i64, u64, u64);

#[derive(Debug)]
pub struct HeldByAge {
    bound: usize,
    len: usize,
    /// Every held item's entry (and some decided ones), while the join is near its bound.
    heap: Option<BinaryHeap<Reverse<Entry>>>,
}

impl HeldByAge {
    /// For a join that evicts above `bound` items.
    pub fn new(bound: usize) -> Self {
        Self {
            bound,
            len: 0,
            heap: None,
        }
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// A new item. `is_held` must answer for the entries of items the join holds: it is asked
    /// here when the heap is swept of decided entries.
    pub fn insert(&mut self, entry: Entry, is_held: impl Fn(Entry) -> bool) {
        if let Some(heap) = &mut self.heap {
            if heap.len() > 2 * self.len + SLACK {
                heap.retain(|Reverse(entry)| is_held(*entry));
            }
            heap.push(Reverse(entry));
        }
        self.len += 1;
    }

    /// An item was decided; its entry, if there is one, goes later.
    pub fn remove(&mut self) {
        self.len = self.len.saturating_sub(1);
        if self.len < self.bound / 2 {
            self.heap = None;
        }
    }

    /// The key holding the oldest item by `(t, seq)`. The first call near the bound builds the
    /// heap from `held` (every item the join holds).
    pub fn oldest<I: Iterator<Item = Entry>>(
        &mut self,
        held: impl FnOnce() -> I,
        is_held: impl Fn(Entry) -> bool,
    ) -> Option<u64> {
        let heap = self
            .heap
            .get_or_insert_with(|| held().map(Reverse).collect());
        while let Some(&Reverse(entry)) = heap.peek() {
            if is_held(entry) {
                return Some(entry.2);
            }
            heap.pop();
        }
        None
    }

    /// Entries in the heap, decided ones included (tests: the sweep bounds them).
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.heap.as_ref().map_or(0, BinaryHeap::len)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::*;

    const BOUND: usize = 300;

    /// Against the ordered map it replaces, on a random mix of inserts (times mostly
    /// increasing, some late), decisions of random held items and oldest-item queries, in
    /// phases that fill the join past its bound and empty it below half of it, so the heap is
    /// built, swept, dropped and built again.
    #[test]
    fn finds_the_oldest_as_an_ordered_map_of_held_items_would() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut rand = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let held: RefCell<BTreeMap<(i64, u64), u64>> = RefCell::default();
        let is_held = |(t, seq, key): Entry| held.borrow().get(&(t, seq)) == Some(&key);
        let all = || {
            let entries: Vec<Entry> = held
                .borrow()
                .iter()
                .map(|(&(t, s), &k)| (t, s, k))
                .collect();
            entries.into_iter()
        };
        let mut ours = HeldByAge::new(BOUND);
        let (mut builds, mut drops, mut swept) = (0, 0, false);
        for seq in 0..40_000u64 {
            let t = seq as i64 * 10 - rand(500) as i64;
            let key = rand(50);
            held.borrow_mut().insert((t, seq), key);
            let before = ours.entries();
            ours.insert((t, seq, key), is_held);
            swept |= ours.entries() < before;
            assert!(
                ours.entries() <= 2 * ours.len() + SLACK,
                "{} entries for {} held",
                ours.entries(),
                ours.len()
            );
            // Filling phases decide about half as many items as arrive, emptying phases
            // about twice as many.
            let filling = (seq / 2_000) % 2 == 0;
            for _ in 0..rand(if filling { 2 } else { 5 }) {
                let n = held.borrow().len();
                if n == 0 {
                    break;
                }
                let pick = *held.borrow().keys().nth(rand(n as u64) as usize).unwrap();
                held.borrow_mut().remove(&pick);
                let before = ours.entries();
                ours.remove();
                drops += usize::from(before > 0 && ours.entries() == 0);
            }
            assert_eq!(ours.len(), held.borrow().len());
            if ours.len() > BOUND || rand(10) == 0 {
                let expected = held.borrow().first_key_value().map(|(_, &k)| k);
                let before = ours.entries();
                assert_eq!(ours.oldest(all, is_held), expected, "at {seq}");
                builds += usize::from(before == 0 && ours.entries() > 0);
            }
        }
        assert!(
            builds > 2 && drops > 2 && swept,
            "{builds} builds, {drops} drops, swept: {swept}"
        );
    }

    #[test]
    fn an_empty_join_has_no_oldest() {
        let mut ours = HeldByAge::new(10);
        assert_eq!(ours.oldest(std::iter::empty, |_| true), None);
        ours.insert((5, 0, 9), |_| true);
        ours.remove();
        assert_eq!(ours.len(), 0);
        assert_eq!(ours.oldest(|| [(5, 0, 9)].into_iter(), |_| false), None);
    }
}
