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
    let mut heads: HashMap<&[u8], u32> = HashMap::default();
    for block in blocks {
        for i in range.clone().unwrap_or(0..block.rows.len()) {
            let row = block.row(i)?;
            let key = table.sort_key(row, precision)?;
            let next = heads.len() as u32;
            entries.push(Entry {
                tail_prefix: prefix(key.tail),
                number: key.number,
                head: *heads.entry(key.head).or_insert(next),
                at: u32::try_from(rows.len()).ok()?,
            });
            rows.push(row);
        }
    }
    // Heads repeat (an event type, an object kind, a path): each entry's head becomes its
    // rank among the distinct heads, so comparing two entries reads no row bytes.
    let mut distinct: Vec<(&[u8], u32)> = heads.into_iter().collect();
    distinct.sort_unstable();
    let mut rank = vec![0; distinct.len()];
    for (r, (_, first_seen)) in distinct.iter().enumerate() {
        rank[*first_seen as usize] = r as u32;
    }
    for entry in &mut entries {
        entry.head = rank[entry.head as usize];
    }
    let tail = |at: u32| {
        let row = rows[at as usize];
        table.sort_key(row, precision).map_or(&row[..0], |k| k.tail)
    };
    let cmp = |a: &Entry, b: &Entry| a.cmp(b, tail);
    if entries.is_sorted_by(|a, b| cmp(a, b) != Ordering::Greater) {
        return None;
    }
    // Arrival order (`at`) breaks ties, so rows with equal keys keep their order.
    entries.sort_unstable_by(cmp);
    Some(entries.iter().map(|e| rows[e.at as usize]).collect())
}

/// A row's [`super::tables::SortKey`] in 32 bytes that compare without reading the row: the
/// head as a rank, the tail by its first 16 bytes (the whole tail is read again only when
/// those are equal), then the row's arrival. Rows sit in megabytes of encoded bytes, so
/// comparing keys in place missed the cache at nearly every comparison (benches/README.md,
/// "Thirteenth session"). Senders choose some tails (a saved event's id); tails that share
/// their first 16 bytes cost re-reading the keys, never a wrong order.
struct Entry {
    tail_prefix: u128,
    number: i64,
    head: u32,
    at: u32,
}

impl Entry {
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
}
