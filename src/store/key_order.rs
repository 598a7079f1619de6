//! The rows of one INSERT in their table's `ORDER BY` order, so that MergeTree finds the
//! block already sorted and skips its own sort and copy (`tables::sort_key` says why).

use std::cmp::Ordering;
use std::ops::Range;

use super::block::Block;
use super::tables::TimePrecision;
use crate::hashing::HashMap;

/// The rows of `blocks` (all of one table; only rows `range` when there is one block) in
/// key order, ties in the order given: ClickHouse sorts a block stably, so it would store the
/// same order. The same blocks always give the same order (nothing depends on the hash
/// seed), so a retried INSERT sends the same bytes, as a replicated table's deduplication of
/// a retried block by its hash needs. `None` when they should go as they are: the table is
/// sent unsorted, a row's key cannot be read, or they are in order already.
pub fn rows_in_key_order<'b>(
    blocks: &[&'b Block],
    range: Option<Range<usize>>,
    precision: TimePrecision,
) -> Option<Vec<&'b [u8]>> {
    let table = blocks.first()?.table;
    table.sort_columns()?;
    let count = blocks
        .iter()
        .map(|b| range.as_ref().map_or(b.rows.len(), Range::len))
        .sum();
    let mut rows = Vec::with_capacity(count);
    let mut entries = Vec::with_capacity(count);
    let mut heads: HashMap<Head<'b>, u32> = HashMap::default();
    let mut any_tail = false;
    for block in blocks {
        for i in range.clone().unwrap_or(0..block.rows.len()) {
            let row = block.row(i)?;
            let key = table.sort_key(row, precision)?;
            let next = heads.len() as u32;
            any_tail |= !key.tail.is_empty();
            entries.push(Entry {
                tail_prefix: prefix(key.tail),
                number: key.number,
                head: *heads.entry(Head(key.head)).or_insert(next),
                at: u32::try_from(rows.len()).ok()?,
            });
            rows.push(row);
        }
    }
    // Heads repeat (an event type, an object kind, a path): each entry's head becomes its
    // rank among the distinct heads, so comparing two entries reads no row bytes.
    let mut distinct: Vec<(&[u8], u32)> = heads.into_iter().map(|(h, id)| (h.0, id)).collect();
    distinct.sort_unstable();
    let mut rank = vec![0; distinct.len()];
    for (r, (_, first_seen)) in distinct.iter().enumerate() {
        rank[*first_seen as usize] = r as u32;
    }
    // Where each head's rows start once grouped by head: counted here, summed below.
    let mut starts = vec![0usize; distinct.len() + 1];
    for entry in &mut entries {
        entry.head = rank[entry.head as usize];
        starts[entry.head as usize + 1] += 1;
    }
    // A table without tails (`jobs`) breaks ties without reading rows again.
    let tail = |at: u32| {
        let row = rows[at as usize];
        if !any_tail {
            return &row[..0];
        }
        table.sort_key(row, precision).map_or(&row[..0], |k| k.tail)
    };
    let cmp = |a: &Entry, b: &Entry| a.cmp(b, tail);
    if entries.is_sorted_by(|a, b| cmp(a, b) != Ordering::Greater) {
        return None;
    }
    // Grouped by head in one pass that keeps arrival order, then each head's rows sorted
    // stably, so rows with equal keys keep their arrival order (`at`). Within a head, each
    // partition's rows come mostly in time order: a few long runs, which the stable sort
    // merges instead of sorting every row again (benches/README.md, "Eighteenth session").
    for h in 1..starts.len() {
        starts[h] += starts[h - 1];
    }
    let mut grouped = vec![Entry::EMPTY; entries.len()];
    let mut next = starts.clone();
    for entry in entries {
        let slot = &mut next[entry.head as usize];
        grouped[*slot] = entry;
        *slot += 1;
    }
    for head in starts.windows(2) {
        grouped[head[0]..head[1]].sort_by(cmp);
    }
    Some(grouped.iter().map(|e| rows[e.at as usize]).collect())
}

/// A head as a map key. Nearly every row's head is one seen before, so the lookup ends in an
/// equality test on a few tens of bytes; compared here eight at a time, it is not a call to
/// `memcmp` per row (most of the lookup's time, benches/README.md, "Eighteenth session").
#[derive(Hash)]
struct Head<'r>(&'r [u8]);

impl PartialEq for Head<'_> {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0, other.0);
        if a.len() != b.len() {
            return false;
        }
        let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
        let words = |w: &[u8]| u64::from_ne_bytes(w.try_into().unwrap_or_default());
        (&mut wa).zip(&mut wb).all(|(x, y)| words(x) == words(y))
            && wa
                .remainder()
                .iter()
                .zip(wb.remainder())
                .all(|(x, y)| x == y)
    }
}

impl Eq for Head<'_> {}

/// A row's [`super::tables::SortKey`] in 32 bytes that compare without reading the row: the
/// head as a rank, the tail by its first 16 bytes (the whole tail is read again only when
/// those are equal), then the row's arrival. Rows sit in megabytes of encoded bytes, so
/// comparing keys in place missed the cache at nearly every comparison (benches/README.md,
/// "Thirteenth session"). Senders choose some tails (a saved event's id); tails that share
/// their first 16 bytes cost re-reading the keys, never a wrong order.
#[derive(Clone, Copy)]
struct Entry {
    tail_prefix: u128,
    number: i64,
    head: u32,
    at: u32,
}

impl Entry {
    const EMPTY: Entry = Entry {
        tail_prefix: 0,
        number: 0,
        head: 0,
        at: 0,
    };

    fn cmp<'r>(&self, other: &Self, tail: impl Fn(u32) -> &'r [u8]) -> Ordering {
        (self.head, self.number, self.tail_prefix)
            .cmp(&(other.head, other.number, other.tail_prefix))
            .then_with(|| tail(self.at).cmp(tail(other.at)))
            .then(self.at.cmp(&other.at))
    }
}

/// The first 16 bytes of `bytes`, zero-padded, big-endian: where two prefixes differ, the
/// byte strings compare the same way (a string that ends first pads with 0 and is the smaller
/// one unless the other has a 0 there too, in which case the prefixes are equal and the
/// strings are compared whole).
fn prefix(bytes: &[u8]) -> u128 {
    let mut padded = [0u8; 16];
    let n = bytes.len().min(16);
    padded[..n].copy_from_slice(&bytes[..n]);
    u128::from_be_bytes(padded)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{JobInfo, WebhookEvent};
    use crate::store::block::RowMark;
    use crate::store::chunks::ChunkWriter;
    use crate::store::tables::{KafkaOrigin, Table, encode_job, encode_webhook_event};

    /// A jobs block of `ids` (the key), each row's `updated_at_ms` its position in the
    /// block, so rows with equal ids can be told apart.
    fn jobs(partition: i32, ids: &[i64]) -> Block {
        let mut w = ChunkWriter::default();
        let mut rows = Vec::new();
        for (offset, &id) in ids.iter().enumerate() {
            let job = JobInfo {
                job_id: id,
                ..JobInfo::default()
            };
            let end =
                w.row(|buf| encode_job(&job, 100 * i64::from(partition) + offset as i64, buf));
            rows.push(RowMark {
                end,
                offset: offset as i64,
            });
        }
        Block {
            table: Table::Jobs,
            tp: (Arc::from("hooks"), partition),
            bytes: w.finish(),
            rows,
        }
    }

    /// (job_id, updated_at_ms) of encoded job rows.
    fn ids(rows: &[&[u8]]) -> Vec<(i64, i64)> {
        rows.iter()
            .map(|row| {
                let id = i64::from_le_bytes(row[..8].try_into().unwrap());
                let updated = i64::from_le_bytes(row[row.len() - 8..].try_into().unwrap());
                (id, updated)
            })
            .collect()
    }

    #[test]
    fn a_tables_blocks_are_merged_in_key_order_equal_keys_in_arrival_order() {
        let (a, b) = (jobs(0, &[30, 10, 20, 10]), jobs(1, &[25, 10]));
        let rows = rows_in_key_order(&[&a, &b], None, TimePrecision::Seconds).unwrap();
        assert_eq!(
            ids(&rows),
            [(10, 1), (10, 3), (10, 101), (20, 2), (25, 100), (30, 0)]
        );
        let part = rows_in_key_order(&[&a], Some(0..2), TimePrecision::Seconds).unwrap();
        assert_eq!(ids(&part), [(10, 1), (30, 0)]);
    }

    #[test]
    fn heads_compare_by_their_bytes_whatever_order_they_are_first_seen_in() {
        let hooks = [
            ("pipeline", "idem:b"),
            ("build", "idem:z"),
            ("pipeline", "idem:a"),
            ("build", "content:1"),
            ("merge_request", "idem:c"),
        ];
        let mut w = ChunkWriter::default();
        let mut rows = Vec::new();
        for (offset, (kind, key)) in hooks.iter().enumerate() {
            let hook = WebhookEvent {
                dedup_key: key.to_string(),
                event_header: String::new(),
                object_kind: kind.to_string(),
                project_id: None,
                project_path: String::new(),
                event_time_ms: 0,
                payload_json: "{}".into(),
                jobs: Vec::new(),
            };
            let origin = KafkaOrigin {
                topic: "hooks",
                partition: 0,
                offset: offset as i64,
            };
            let end = w.row(|buf| encode_webhook_event(&hook, origin, 0, buf));
            rows.push(RowMark {
                end,
                offset: offset as i64,
            });
        }
        let block = Block {
            table: Table::WebhookEvents,
            tp: (Arc::from("hooks"), 0),
            bytes: w.finish(),
            rows,
        };
        let sorted = rows_in_key_order(&[&block], None, TimePrecision::Seconds).unwrap();
        let keys: Vec<(&[u8], &[u8])> = sorted
            .iter()
            .map(|row| {
                let key = Table::WebhookEvents
                    .sort_key(row, TimePrecision::Seconds)
                    .unwrap();
                (key.head, key.tail)
            })
            .collect();
        assert_eq!(
            keys,
            [
                (&b"build"[..], &b"content:1"[..]),
                (b"build", b"idem:z"),
                (b"merge_request", b"idem:c"),
                (b"pipeline", b"idem:a"),
                (b"pipeline", b"idem:b"),
            ]
        );
    }

    #[test]
    fn prefixes_order_as_the_bytes_do_and_equal_prefixes_fall_back_to_the_bytes() {
        let texts: [&[u8]; 9] = [
            b"",
            b"\0",
            b"a",
            b"a\0",
            b"ab",
            b"saved:99",
            b"saved:100",
            b"content:0123456789abcdef0",
            b"content:0123456789abcdef",
        ];
        let tail = |at: u32| texts[at as usize];
        for (i, a) in texts.iter().enumerate() {
            for (j, b) in texts.iter().enumerate() {
                let entry = |at: usize| Entry {
                    tail_prefix: prefix(texts[at]),
                    number: 0,
                    head: 0,
                    at: at as u32,
                };
                let expected = a.cmp(b).then(i.cmp(&j));
                assert_eq!(
                    entry(i).cmp(&entry(j), tail),
                    expected,
                    "{:?} {:?}",
                    String::from_utf8_lossy(a),
                    String::from_utf8_lossy(b)
                );
            }
        }
    }

    #[test]
    fn rows_go_as_they_are_when_sorted_unreadable_or_of_an_unsorted_table() {
        let sorted = jobs(0, &[1, 2, 2, 5]);
        assert_eq!(
            rows_in_key_order(&[&sorted], None, TimePrecision::Seconds),
            None
        );

        let mut cut = jobs(0, &[9, 3]);
        cut.rows[0].end = 4; // the first row is now half a job id
        assert_eq!(
            rows_in_key_order(&[&cut], None, TimePrecision::Seconds),
            None
        );

        let mut token_use = jobs(0, &[9, 3]);
        token_use.table = Table::TokenUse;
        assert_eq!(
            rows_in_key_order(&[&token_use], None, TimePrecision::Seconds),
            None
        );
    }

    /// Audit rows of `(event_type, created_at_ms, dedup_key)` in blocks of up to three
    /// partitions.
    fn audit_blocks(parts: &[Vec<(String, i64, String)>]) -> Vec<Block> {
        use crate::model::{ActorKind, AuditEvent, AuditMeaning};
        use crate::store::tables::encode_audit_event;
        parts
            .iter()
            .enumerate()
            .map(|(partition, keys)| {
                let mut w = ChunkWriter::default();
                let mut rows = Vec::new();
                for (offset, (event_type, created_at_ms, dedup_key)) in keys.iter().enumerate() {
                    let ev = AuditEvent {
                        id: String::new(),
                        dedup_key: dedup_key.clone(),
                        stream_only: true,
                        event_type: event_type.clone(),
                        author_id: 1,
                        author_name: String::new(),
                        author_class: None,
                        actor_kind: ActorKind::Human,
                        entity_id: None,
                        entity_type: String::new(),
                        entity_path: String::new(),
                        target_id: None,
                        target_type: String::new(),
                        target_details: String::new(),
                        ip_address: String::new(),
                        created_at_ms: *created_at_ms,
                        details_json: "{}".into(),
                        meaning: AuditMeaning::Other,
                    };
                    let origin = KafkaOrigin {
                        topic: "audit",
                        partition: partition as i32,
                        offset: offset as i64,
                    };
                    let end = w.row(|buf| encode_audit_event(&ev, origin, 0, buf));
                    rows.push(RowMark {
                        end,
                        offset: offset as i64,
                    });
                }
                Block {
                    table: Table::AuditEvents,
                    tp: (Arc::from("audit"), partition as i32),
                    bytes: w.finish(),
                    rows,
                }
            })
            .collect()
    }

    proptest::proptest! {
        /// Whatever the heads, times and tails (shared prefixes, zero bytes, repeats, a
        /// partition's rows in or out of time order), the order is a stable sort of the rows
        /// by their keys' bytes and numbers, as the server's sort of the block would be.
        #[test]
        fn the_order_is_a_stable_sort_by_the_whole_key(
            parts in proptest::collection::vec(
                proptest::collection::vec(
                    (
                        proptest::sample::select(vec!["", "a", "b", "ab", "job_artifact_downloaded",
                            "job_artifact_downloadeX", "Job_artifact_downloaded",
                            "job_artifact_downloaded_x",
                            "user_authenticated_using_job_token"]),
                        0i64..5_000,
                        proptest::sample::select(vec!["", "\0", "a", "a\0", "content:0123456789",
                            "content:01234567", "content:0123456789abcdef0", "saved:99"]),
                    ),
                    0..40,
                ),
                1..4,
            )
        ) {
            let parts: Vec<Vec<(String, i64, String)>> = parts
                .into_iter()
                .map(|p| p.into_iter().map(|(h, n, t)| (h.to_owned(), n, t.to_owned())).collect())
                .collect();
            let blocks = audit_blocks(&parts);
            let refs: Vec<&Block> = blocks.iter().collect();
            let mut expected: Vec<&[u8]> = refs
                .iter()
                .flat_map(|b| (0..b.rows.len()).map(|i| b.row(i).unwrap()))
                .collect();
            let arrival = expected.clone();
            let key = |row: &&[u8]| {
                let k = Table::AuditEvents.sort_key(row, TimePrecision::Seconds).unwrap();
                (k.head.to_vec(), k.number, k.tail.to_vec())
            };
            expected.sort_by_key(key);
            let got = rows_in_key_order(&refs, None, TimePrecision::Seconds)
                .unwrap_or(arrival);
            proptest::prop_assert_eq!(got, expected);
        }
    }
}
