//! The authentication ↔ resource join.
//!
//! GitLab never says "job J of project A did X in project B". `user_authenticated_using_job_token`
//! (auth) gives the source project and job; a resource event gives the target and action. No
//! request id links them, so they are joined on `(author_id, ip_address)` and time.
//!
//! **1:1 matching.** Each API request authenticates once (one auth event) and produces at most
//! one resource event, so an auth is joined to at most one resource and vice versa. Requests
//! without a resource event (most API reads) leave their auth unmatched (`auth_only`).
//!
//! **Nearest first, decided late.** Events arrive out of order, so nothing is decided on
//! arrival. Both sides are held per key until the watermark (event time below which no more
//! events are expected) has passed `t + window` for every item of a *segment*: a maximal run of
//! the key's items, in time order, with no gap larger than `window`. No candidate pair can
//! cross a segment boundary, so a closed segment is complete and is assigned exactly: candidate
//! pairs (`0 <= t_res - t_auth <= window`: the authentication happens first, on GitLab's own
//! clock, whatever order the events *arrive* in) are taken in order of smallest gap, ties going to the
//! auth that precedes its resource, then to the earlier items, never reusing an item. The item
//! order is a total order on event content (time, side, dedup key), so the result does not
//! depend on arrival order.
//!
//! **Adjacent pairs, decided early.** An auth immediately followed, in the key's time order,
//! by a resource within the window, with no other item of the key at either one's millisecond,
//! is each other's nearest candidate: smallest-gap-first assignment takes that pair whatever
//! else the segment holds, and taking it first leaves the rest of the assignment unchanged.
//! Once the watermark has passed the resource, no on-time event can fall between the two, so
//! the pair is committed then (`Adjacent`), not when its segment closes. That is the usual
//! case (one request: auth, then its resource event), and it keeps alert latency near
//! `lateness` instead of `window + lateness`, and independent of how long a busy key's segment
//! stays open. Only a late event could have split the pair, as with every late event.
//!
//! **Re-dispatches.** GitLab sends stream-only events again, seconds to minutes later. A copy
//! of a held item is dropped on arrival; a copy of an item already decided is recognised by a
//! memory of decided items' content keys (event time, side, dedup key) kept for
//! `DECIDED_MEMORY_MS` of event time, so it is not joined a second time (an early-decided pair
//! would otherwise leave its copies to be decided again, as `auth_only` or a second pair).
//!
//! **Chains.** A busy user on a shared runner IP can keep one segment open indefinitely. Once
//! a segment's first item is older than `watermark - max_hold`, the segment is assigned with
//! what is there; pairs whose two sides are past their window, and unmatched items past their
//! window, are committed (`HeldTooLong`); the rest stays. An item committed this way could, in
//! rare displacement chains, have been paired differently by an item still to come: this and
//! the `NEAREST` cap are the approximations.
//!
//! **Bounds.** Over `max_pending` items, the segment holding the oldest item is committed as is
//! (`Evicted`): auths are still emitted (as matched or `auth_only`), never lost.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use std::hash::BuildHasher;

use super::held::{Entry, HeldByAge};
use crate::hashing::{HashMap, HashSet, RandomState};
use crate::model::{Action, ActorKind};

/// What the authentication contributes to a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSide {
    pub author_name: String,
    pub actor_kind: ActorKind,
    pub project_id: Option<i64>,
    pub project_path: String,
    pub job_id: Option<i64>,
}

/// What the resource event contributes to a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSide {
    pub author_name: String,
    pub actor_kind: ActorKind,
    pub project_id: Option<i64>,
    pub project_path: String,
    pub action: Action,
    pub upstream_project_path: Option<String>,
    pub upstream_pipeline_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    Auth(AuthSide),
    Resource(ResourceSide),
}

/// One held event. What the join scans is inline and small (48 bytes, `held_items_are_small`);
/// what only a decision reads is boxed. A busy key's list, searched on every arrival and
/// scanned for adjacent pairs as the watermark passes, then takes a cache line per item or
/// less, not three: with tens of thousands of events held, those cache misses were a large
/// part of the join's time (benches/correlate.rs, `sparse_*_behind`; benches/README.md,
/// "Sixteenth session").
#[derive(Debug, Clone)]
pub struct Item {
    pub t: i64,
    seq: u64,
    /// `content_key` of the time, side and dedup key, computed once on arrival; `None`
    /// without a dedup key.
    content: Option<u64>,
    auth: bool,
    body: Box<ItemBody>,
}

#[derive(Debug, Clone)]
struct ItemBody {
    dedup_key: String,
    side: Side,
}

impl Item {
    fn is_auth(&self) -> bool {
        self.auth
    }

    /// Total order on content: this is what makes assignment independent of arrival order.
    /// The dedup key only breaks ties of time and side, so the body is rarely read.
    fn order_key(&self) -> (i64, bool, &str) {
        (self.t, !self.auth, &self.body.dedup_key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitReason {
    /// An auth and the resource right after it, past the watermark (the common case).
    Adjacent,
    /// The segment was complete.
    WindowClosed,
    /// The segment stayed open longer than `max_hold_ms`.
    HeldTooLong,
    /// `max_pending` was exceeded.
    Evicted,
    /// `flush_all`.
    Flushed,
}

/// A decision: a matched pair, or an item that found no partner.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub author_id: i64,
    pub ip: String,
    pub auth: Option<(i64, AuthSide)>,
    pub resource: Option<(i64, ResourceSide)>,
    pub reason: CommitReason,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinCounters {
    /// Events that arrived after their window had already closed.
    pub late: u64,
    /// Same dedup key, time and side as an event already held.
    pub duplicates: u64,
    pub evicted_auths: u64,
    pub evicted_resources: u64,
    pub held_too_long_auths: u64,
    pub held_too_long_resources: u64,
}

#[derive(Debug)]
struct KeyState {
    author_id: i64,
    ip: String,
    /// Sorted by `Item::order_key`.
    items: Vec<Item>,
    /// Earliest deadline of this key in `due`. At most a few entries per key live in the
    /// heap, so a busy key is revisited about once per window, not once per event.
    scheduled: Option<i64>,
}

/// How long (event time) a decided item's content key is remembered, to drop re-dispatched
/// copies. Sixty seconds covers GitLab's immediate re-sends; later copies are rare, and the
/// store's dedup keys still hide their rows (only the correlation could differ).
pub const DECIDED_MEMORY_MS: i64 = 60_000;

#[derive(Debug)]
pub struct Join {
    window_ms: i64,
    max_pending: usize,
    max_hold_ms: i64,
    index: HashMap<i64, HashMap<String, u64>>,
    keys: HashMap<u64, KeyState>,
    next_key: u64,
    next_seq: u64,
    /// `(deadline, key)`: the key may have something to commit once the watermark passes.
    due: BinaryHeap<Reverse<(i64, u64)>>,
    /// Every held item by age: the count and the oldest item for eviction.
    held: HeldByAge,
    watermark: Option<i64>,
    pending_auths: usize,
    counters: JoinCounters,
    /// Content keys of decided items (see `DECIDED_MEMORY_MS`), and their event times in
    /// decision order for expiry; at most `max_pending` of them.
    decided: HashSet<u64>,
    decided_order: VecDeque<(i64, u64)>,
    /// Seeds the content keys at random, so a sender cannot compute two events whose keys
    /// collide (one would be dropped as the other's duplicate).
    content_seed: RandomState,
}

impl Join {
    /// `max_hold_ms` is raised to at least twice the window so a hold can't undercut it.
    pub fn new(window_ms: i64, max_pending: usize, max_hold_ms: i64) -> Self {
        let window_ms = window_ms.max(0);
        Self {
            window_ms,
            max_pending: max_pending.max(1),
            max_hold_ms: max_hold_ms.max(2 * window_ms + 1),
            index: HashMap::default(),
            keys: HashMap::default(),
            next_key: 0,
            next_seq: 0,
            due: BinaryHeap::new(),
            held: HeldByAge::new(max_pending.max(1)),
            watermark: None,
            pending_auths: 0,
            counters: JoinCounters::default(),
            decided: HashSet::default(),
            decided_order: VecDeque::new(),
            content_seed: RandomState::default(),
        }
    }

    pub fn counters(&self) -> JoinCounters {
        self.counters
    }

    pub fn pending_auths(&self) -> usize {
        self.pending_auths
    }

    pub fn pending_resources(&self) -> usize {
        self.held.len() - self.pending_auths
    }

    pub fn pending_keys(&self) -> usize {
        self.keys.len()
    }

    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Holds one event. Evictions caused by the insert are pushed to `out`.
    pub fn insert(
        &mut self,
        author_id: i64,
        ip: &str,
        t: i64,
        dedup_key: String,
        side: Side,
        out: &mut Vec<Outcome>,
    ) {
        let key_id = self.key_id(author_id, ip);
        let ks = self
            .keys
            .get_mut(&key_id)
            .expect("key_id returns a live key");
        let is_auth = matches!(side, Side::Auth(_));
        // Events mostly arrive in time order: then the item goes last, without a search.
        let lo = match ks.items.last() {
            Some(last) if last.t < t => ks.items.len(),
            _ => ks.items.partition_point(|i| i.t < t),
        };
        let content = (!dedup_key.is_empty())
            .then(|| content_key(&self.content_seed, t, is_auth, &dedup_key));
        let dup = content.is_some()
            && ks.items[lo..].iter().take_while(|i| i.t == t).any(|i| {
                i.content == content && i.auth == is_auth && i.body.dedup_key == dedup_key
            });
        if dup || content.is_some_and(|key| self.decided.contains(&key)) {
            self.counters.duplicates += 1;
            return;
        }
        if self
            .watermark
            .is_some_and(|wm| t.saturating_add(self.window_ms) < wm)
        {
            self.counters.late += 1;
        }
        let item = Item {
            t,
            seq: self.next_seq,
            content,
            auth: is_auth,
            body: Box::new(ItemBody { dedup_key, side }),
        };
        self.next_seq += 1;
        // Items before `lo` are earlier, so the position is among those at `t` (usually none):
        // one binary search per insert, not two, on a busy key's long list.
        let pos = lo
            + ks.items[lo..]
                .iter()
                .take_while(|i| i.order_key() < item.order_key())
                .count();
        let seq = item.seq;
        ks.items.insert(pos, item);
        self.pending_auths += usize::from(is_auth);
        // The item may complete an adjacent pair once the watermark passes `t`, and can be
        // committed at `t + window` at the latest. The earlier deadline is only worth a heap
        // entry if it is earlier than what is scheduled: the key is re-examined then, and
        // reschedules itself for the next possible commit.
        let deadline = t;
        if ks.scheduled.is_none_or(|s| deadline < s) {
            ks.scheduled = Some(deadline);
            self.due.push(Reverse((deadline, key_id)));
        }
        let keys = &self.keys;
        self.held
            .insert((t, seq, key_id), |entry| holds(keys, entry));
        // An eviction that found nothing would find nothing again: the count and the lists
        // disagree, and holding more is better than spinning.
        while self.held.len() > self.max_pending && self.evict_oldest(out) {}
    }

    /// Commits what the watermark allows. A watermark that does not move forward does nothing.
    pub fn advance(&mut self, watermark_ms: i64, out: &mut Vec<Outcome>) {
        if self.watermark.is_some_and(|w| watermark_ms <= w) {
            return;
        }
        self.watermark = Some(watermark_ms);
        let forget_before = watermark_ms.saturating_sub(DECIDED_MEMORY_MS);
        while let Some(&(t, key)) = self.decided_order.front() {
            if t >= forget_before {
                break;
            }
            self.decided.remove(&key);
            self.decided_order.pop_front();
        }
        while let Some(&Reverse((deadline, key_id))) = self.due.peek() {
            if deadline >= watermark_ms {
                break;
            }
            self.due.pop();
            self.process_key(key_id, watermark_ms, out);
        }
    }

    /// Commits everything held, each segment assigned exactly.
    pub fn flush_all(&mut self, out: &mut Vec<Outcome>) {
        let mut ids: Vec<u64> = self.keys.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(mut ks) = self.keys.remove(&id) else {
                continue;
            };
            while !ks.items.is_empty() {
                let end = segment_end(&ks.items, self.window_ms);
                self.commit(&mut ks, end, None, CommitReason::Flushed, out);
            }
            self.drop_key(&ks);
        }
        self.due.clear();
    }

    fn key_id(&mut self, author_id: i64, ip: &str) -> u64 {
        if let Some(&id) = self.index.get(&author_id).and_then(|m| m.get(ip)) {
            return id;
        }
        let id = self.next_key;
        self.next_key += 1;
        self.index
            .entry(author_id)
            .or_default()
            .insert(ip.to_string(), id);
        self.keys.insert(
            id,
            KeyState {
                author_id,
                ip: ip.to_string(),
                items: Vec::new(),
                scheduled: None,
            },
        );
        id
    }

    fn drop_key(&mut self, ks: &KeyState) {
        if let Some(m) = self.index.get_mut(&ks.author_id) {
            m.remove(&ks.ip);
            if m.is_empty() {
                self.index.remove(&ks.author_id);
            }
        }
    }

    fn process_key(&mut self, key_id: u64, wm: i64, out: &mut Vec<Outcome>) {
        let Some(mut ks) = self.keys.remove(&key_id) else {
            return; // stale heap entry
        };
        let w = self.window_ms;
        self.commit_adjacent(&mut ks, wm, out);
        while let Some(first) = ks.items.first() {
            let first_t = first.t;
            let end = segment_end(&ks.items, w);
            if ks.items[end - 1].t.saturating_add(w) < wm {
                self.commit(&mut ks, end, None, CommitReason::WindowClosed, out);
                continue;
            }
            if first_t.saturating_add(self.max_hold_ms) < wm {
                self.commit(&mut ks, end, Some(wm), CommitReason::HeldTooLong, out);
                // What a partial commit took out may have made two remaining items adjacent.
                self.commit_adjacent(&mut ks, wm, out);
            }
            break;
        }
        // Next time anything can commit: an item not yet behind the watermark (it may complete
        // an adjacent pair), the first segment closing, or its hold running out. `next >= wm`
        // always, so the loop in `advance` never pops it again at this watermark.
        if let Some(first) = ks.items.first() {
            let end = segment_end(&ks.items, w);
            let ahead = ks.items.partition_point(|i| i.t < wm);
            let mut next = (ks.items[end - 1].t.saturating_add(w))
                .min(first.t.saturating_add(self.max_hold_ms))
                .min(ks.items.get(ahead).map_or(i64::MAX, |i| i.t));
            if next < wm {
                // Hold overdue: what is left waits for a partner to pass its window.
                next = ks.items[..end]
                    .iter()
                    .map(|i| i.t.saturating_add(w))
                    .filter(|&d| d >= wm)
                    .min()
                    .unwrap_or(wm);
            }
            if ks.scheduled.is_none_or(|s| s < wm || next < s) {
                ks.scheduled = Some(next);
                self.due.push(Reverse((next, key_id)));
            }
        }
        if ks.items.is_empty() {
            self.drop_key(&ks);
        } else {
            self.keys.insert(key_id, ks);
        }
    }

    /// Commits every adjacent (auth, resource) pair whose resource is behind the watermark:
    /// see the module docs for why such a pair is final.
    fn commit_adjacent(&mut self, ks: &mut KeyState, wm: i64, out: &mut Vec<Outcome>) {
        let w = self.window_ms;
        let items = &ks.items;
        let behind = items.partition_point(|i| i.t < wm);
        let mut take: Vec<usize> = Vec::new();
        let mut i = 0;
        while i + 1 < behind {
            let (a, r) = (&items[i], &items[i + 1]);
            let alone_before = i == 0 || items[i - 1].t < a.t;
            let alone_after = items.get(i + 2).is_none_or(|next| next.t > r.t);
            if a.is_auth() && !r.is_auth() && r.t - a.t <= w && alone_before && alone_after {
                take.push(i);
                i += 2;
            } else {
                i += 1;
            }
        }
        if take.is_empty() {
            return;
        }
        // The pairs leave in one pass that closes the gaps behind them. Draining pair by pair
        // moved the rest of the list once per pair: on a busy key, with the items read ahead
        // of the watermark behind them, that was most of the join's time.
        let mut starts = take.iter().copied().peekable();
        let mut index = 0;
        let mut taken: Vec<Item> = ks
            .items
            .extract_if(..behind, |_| {
                let i = index;
                index += 1;
                let Some(&start) = starts.peek() else {
                    return false;
                };
                if i == start + 1 {
                    starts.next();
                }
                i == start || i == start + 1
            })
            .collect();
        // Last pair first, as they were decided before.
        while let (Some(res), Some(auth)) = (taken.pop(), taken.pop()) {
            self.forget(&auth, CommitReason::Adjacent);
            self.forget(&res, CommitReason::Adjacent);
            out.push(self.outcome(ks, Some(auth), Some(res), CommitReason::Adjacent));
        }
    }

    /// Whether there was an item to evict.
    fn evict_oldest(&mut self, out: &mut Vec<Outcome>) -> bool {
        let keys = &self.keys;
        let every_item = || {
            keys.iter()
                .flat_map(|(&key, ks)| ks.items.iter().map(move |i| (i.t, i.seq, key)))
        };
        let Some(key_id) = self.held.oldest(every_item, |entry| holds(keys, entry)) else {
            return false;
        };
        let Some(mut ks) = self.keys.remove(&key_id) else {
            return false;
        };
        // The key's first item is the globally oldest one, so this always makes room.
        let end = segment_end(&ks.items, self.window_ms);
        self.commit(&mut ks, end, None, CommitReason::Evicted, out);
        if ks.items.is_empty() {
            self.drop_key(&ks);
        } else {
            self.keys.insert(key_id, ks);
        }
        true
    }

    /// Assigns `ks.items[..end]` and commits it. With `partial_wm`, only pairs with both
    /// sides past their window, and lone items past their window, are committed; the rest is
    /// put back.
    fn commit(
        &mut self,
        ks: &mut KeyState,
        end: usize,
        partial_wm: Option<i64>,
        reason: CommitReason,
        out: &mut Vec<Outcome>,
    ) {
        let w = self.window_ms;
        let is_final = |t: i64| partial_wm.is_none_or(|wm| t.saturating_add(w) < wm);
        let seg: Vec<Item> = ks.items.drain(..end).collect();
        let pairs = assign(&seg, w);
        let mut slots: Vec<Option<Item>> = seg.into_iter().map(Some).collect();
        let mut keep: Vec<Item> = Vec::new();
        for (a, r) in pairs {
            let (Some(auth), Some(res)) = (slots[a].take(), slots[r].take()) else {
                continue;
            };
            if !(is_final(auth.t) && is_final(res.t)) {
                keep.push(auth);
                keep.push(res);
                continue;
            }
            self.forget(&auth, reason);
            self.forget(&res, reason);
            out.push(self.outcome(ks, Some(auth), Some(res), reason));
        }
        for item in slots.into_iter().flatten() {
            if !is_final(item.t) {
                keep.push(item);
                continue;
            }
            self.forget(&item, reason);
            let (a, r) = if item.is_auth() {
                (Some(item), None)
            } else {
                (None, Some(item))
            };
            out.push(self.outcome(ks, a, r, reason));
        }
        if !keep.is_empty() {
            keep.sort_by(|x, y| x.order_key().cmp(&y.order_key()));
            ks.items.splice(..0, keep);
        }
    }

    fn forget(&mut self, item: &Item, reason: CommitReason) {
        self.held.remove();
        if let Some(key) = item.content {
            if self.decided.insert(key) {
                self.decided_order.push_back((item.t, key));
            }
            while self.decided_order.len() > self.max_pending {
                if let Some((_, old)) = self.decided_order.pop_front() {
                    self.decided.remove(&old);
                }
            }
        }
        let auth = item.is_auth();
        self.pending_auths -= usize::from(auth);
        let c = &mut self.counters;
        match (reason, auth) {
            (CommitReason::Evicted, true) => c.evicted_auths += 1,
            (CommitReason::Evicted, false) => c.evicted_resources += 1,
            (CommitReason::HeldTooLong, true) => c.held_too_long_auths += 1,
            (CommitReason::HeldTooLong, false) => c.held_too_long_resources += 1,
            _ => {}
        }
    }

    fn outcome(
        &self,
        ks: &KeyState,
        auth: Option<Item>,
        res: Option<Item>,
        reason: CommitReason,
    ) -> Outcome {
        let auth = auth.and_then(|i| match i.body.side {
            Side::Auth(a) => Some((i.t, a)),
            Side::Resource(_) => None,
        });
        let resource = res.and_then(|i| match i.body.side {
            Side::Resource(r) => Some((i.t, r)),
            Side::Auth(_) => None,
        });
        Outcome {
            author_id: ks.author_id,
            ip: ks.ip.clone(),
            auth,
            resource,
            reason,
        }
    }
}

/// A 64-bit digest of an item's content identity, held only in this join's memory, with the
/// join's random seed (it was SipHash with fixed keys, the same in every process, so a sender
/// could search for a colliding event offline; and 0.6 % of ingest's samples).
fn content_key(seed: &RandomState, t: i64, is_auth: bool, dedup_key: &str) -> u64 {
    seed.hash_one((t, is_auth, dedup_key))
}

/// Whether key `key` holds item `seq` at time `t` (`HeldByAge` asks; every key is in `keys`
/// whenever it does).
fn holds(keys: &HashMap<u64, KeyState>, (t, seq, key): Entry) -> bool {
    keys.get(&key).is_some_and(|ks| {
        let at = ks.items.partition_point(|i| i.t < t);
        ks.items[at..]
            .iter()
            .take_while(|i| i.t == t)
            .any(|i| i.seq == seq)
    })
}

/// End (exclusive) of the segment starting at `items[0]`: consecutive items at most `w` apart.
fn segment_end(items: &[Item], w: i64) -> usize {
    let mut end = 1;
    while end < items.len() && items[end].t - items[end - 1].t <= w {
        end += 1;
    }
    end
}

/// Candidate auths considered per resource on each side in time. Bounds the work on a key
/// with hundreds of requests per window; a resource whose `NEAREST` nearer auths on a side
/// were all taken would only get a far, doubtful match anyway.
pub const NEAREST: usize = 16;

/// Smallest-gap-first 1:1 assignment over a time-sorted slice. Returns `(auth, resource)`
/// index pairs. Sorting candidates by `(|gap|, resource-before-auth, auth index, resource
/// index)` makes the result a function of the slice content only.
pub fn assign(items: &[Item], w: i64) -> Vec<(usize, usize)> {
    let auths: Vec<usize> = (0..items.len()).filter(|&i| items[i].is_auth()).collect();
    let mut cands: Vec<(i64, bool, usize, usize)> = Vec::new();
    for (r, res) in items.iter().enumerate().filter(|(_, i)| !i.is_auth()) {
        let mid = auths.partition_point(|&a| items[a].t < res.t);
        // An auth event is written when the request authenticates, before the endpoint emits
        // its resource event, and both carry GitLab's clock: an auth later than the resource
        // cannot be its authentication (only equal milliseconds are admitted).
        let (lo, hi) = (res.t.saturating_sub(w), res.t);
        let before = auths[..mid].iter().rev().take_while(|&&a| items[a].t >= lo);
        let after = auths[mid..].iter().take_while(|&&a| items[a].t <= hi);
        for &a in before.take(NEAREST).chain(after.take(NEAREST)) {
            let gap = res.t - items[a].t;
            cands.push((gap.abs(), gap < 0, a, r));
        }
    }
    cands.sort_unstable();
    let mut used = vec![false; items.len()];
    let mut pairs = Vec::new();
    for (_, _, a, r) in cands {
        if !used[a] && !used[r] {
            used[a] = true;
            used[r] = true;
            pairs.push((a, r));
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inline part of a held item stays at 48 bytes, under a 64-byte cache line (it was
    /// 176 bytes with the event's fields inline).
    #[test]
    fn held_items_are_small() {
        assert!(
            std::mem::size_of::<Item>() <= 48,
            "{}",
            std::mem::size_of::<Item>()
        );
    }

    fn resource(project: i64) -> Side {
        Side::Resource(ResourceSide {
            author_name: String::new(),
            actor_kind: ActorKind::Human,
            project_id: Some(project),
            project_path: String::new(),
            action: Action::AUTH,
            upstream_project_path: None,
            upstream_pipeline_id: None,
        })
    }

    /// Over the bound, the key of the oldest item by event time goes, not the oldest
    /// arrival; also once the join has emptied below half its bound (where it stops keeping
    /// its items in age order) and filled again.
    #[test]
    fn eviction_takes_the_oldest_item_by_event_time_each_time_the_join_fills() {
        let mut join = Join::new(1_000, 4, 1_000_000);
        let mut out = Vec::new();
        let mut evicted = |join: &mut Join, author: i64, t: i64| {
            out.clear();
            join.insert(
                author,
                "10.0.0.1",
                t,
                format!("k{author}"),
                resource(author),
                &mut out,
            );
            out.iter().map(|o| o.author_id).collect::<Vec<_>>()
        };
        for round in 0..3 {
            let base = 1_000_000 * (round + 1);
            for (author, dt) in [(1, 100), (2, 200), (3, 300), (4, 400)] {
                assert_eq!(
                    evicted(&mut join, author, base + dt),
                    [0i64; 0],
                    "round {round}"
                );
            }
            assert_eq!(
                evicted(&mut join, 5, base + 50),
                [5],
                "round {round}: arrived last, oldest"
            );
            assert_eq!(evicted(&mut join, 6, base + 500), [1], "round {round}");
            assert_eq!(evicted(&mut join, 7, base + 450), [2], "round {round}");
            let mut rest = Vec::new();
            join.advance(base + 100_000, &mut rest);
            let mut authors: Vec<i64> = rest.iter().map(|o| o.author_id).collect();
            authors.sort_unstable();
            assert_eq!(
                authors,
                [3, 4, 6, 7],
                "round {round}: decided, the join is empty"
            );
            assert_eq!(join.pending_resources(), 0);
        }
    }

    /// The same event gets another content key in another join: the key is not a fixed
    /// function of what the sender wrote, so colliding events cannot be computed in advance.
    #[test]
    fn content_keys_are_seeded_per_join() {
        let (a, b) = (Join::new(1_000, 10, 0), Join::new(1_000, 10, 0));
        let key = |j: &Join| content_key(&j.content_seed, 1_700_000_000_000, true, "content:ab");
        assert_eq!(key(&a), key(&a), "stable within one join");
        assert_ne!(key(&a), key(&b));
    }
}
