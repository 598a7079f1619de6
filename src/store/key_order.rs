//! The rows of one INSERT in their table's `ORDER BY` order, so that MergeTree finds the
//! block already sorted and skips its own sort and copy (`tables::sort_key` says why).

use std::ops::Range;

use super::block::Block;
use super::tables::TimePrecision;

/// The rows of `blocks` (all of one table; only rows `range` when there is one block) in
/// key order, ties in the order given: ClickHouse sorts a block stably, so it would store the
/// same order. `None` when they should go as they are: the table is sent unsorted, a row's
/// key cannot be read, or they are in order already.
pub fn rows_in_key_order<'b>(
    blocks: &[&'b Block],
    range: Option<Range<usize>>,
    precision: TimePrecision,
) -> Option<Vec<&'b [u8]>> {
    let table = blocks.first()?.table;
    table.sort_columns()?;
    let mut keyed = Vec::new();
    for block in blocks {
        for i in range.clone().unwrap_or(0..block.rows.len()) {
            let row = block.row(i)?;
            keyed.push((table.sort_key(row, precision)?, row));
        }
    }
    if keyed.is_sorted_by(|a, b| a.0 <= b.0) {
        return None;
    }
    // Stable, so rows with equal keys keep their order.
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Some(keyed.into_iter().map(|(_, row)| row).collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::JobInfo;
    use crate::store::block::RowMark;
    use crate::store::chunks::ChunkWriter;
    use crate::store::tables::{Table, encode_job};

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
