//! Encoded rows held as fixed-size chunks from a pool, instead of one growing buffer per block.
//!
//! Why: a block grown by doubling copies its bytes at every doubling, keeps up to half its
//! capacity unused, and its large buffers come fresh from the kernel after every batch (glibc
//! maps and trims big allocations), so each batch paid page faults on all of its bytes
//! (benches/README.md, "Chunked blocks"). A chunk is filled with whole rows and never
//! regrown; the writer sends each chunk as one body piece, small enough that the HTTP client's
//! copy stays small (the reason for the size, benches/README.md, "Peak memory"); once
//! ClickHouse has the bytes and the last reference is dropped, the chunk returns to the pool
//! for the next batch.

use bytes::Bytes;

use super::chunk_pool::{CHUNK_BYTES, give, take};

/// A row is started in a new chunk when less than this is left in the current one. A larger
/// row still fits: its chunk grows (and is not pooled afterwards).
const ROW_HEADROOM: usize = 16 * 1024;

/// Owns a chunk behind `Bytes` and gives it back to the pool when the last slice is dropped.
struct Pooled(Vec<u8>);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

/// Sealed bytes: consecutive chunks, each starting and ending on a row boundary.
#[derive(Debug, Clone, Default)]
pub struct Chunks {
    /// Each chunk with the offset of its first byte in the whole.
    parts: Vec<(usize, Bytes)>,
    len: usize,
}

impl Chunks {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes `start..end` of the whole, as slices of the chunks (no copy).
    pub fn slices(&self, start: usize, end: usize) -> impl Iterator<Item = Bytes> + '_ {
        self.parts.iter().filter_map(move |(at, chunk)| {
            let (from, to) = (start.max(*at), end.min(at + chunk.len()));
            (from < to).then(|| chunk.slice(from - at..to - at))
        })
    }

    /// Bytes `start..end` when they lie in one chunk, as a row always does; `None` otherwise.
    pub fn contiguous(&self, start: usize, end: usize) -> Option<&[u8]> {
        let part = self
            .parts
            .partition_point(|(at, _)| *at <= start)
            .checked_sub(1)?;
        let (at, chunk) = &self.parts[part];
        chunk.get(start - at..end.checked_sub(*at)?)
    }

    /// Bytes `start..end` copied into one buffer.
    pub fn to_vec(&self, start: usize, end: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(end.saturating_sub(start));
        for piece in self.slices(start, end) {
            out.extend_from_slice(&piece);
        }
        out
    }
}

/// One chunk holding all of `bytes` (tests and single-buffer callers; not pooled).
impl From<Vec<u8>> for Chunks {
    fn from(bytes: Vec<u8>) -> Self {
        let len = bytes.len();
        Chunks {
            parts: vec![(0, Bytes::from(bytes))],
            len,
        }
    }
}

/// `rows` copied, in order, into pooled chunks of whole rows, each handed out once full:
/// the writer's rows of one INSERT in key order (`store::key_order`). A chunk is filled only
/// when the INSERT takes the next piece, so the copy holds the few chunks the HTTP client has
/// not written yet, not the whole INSERT.
pub fn copied_in_chunks<'r>(
    rows: impl Iterator<Item = &'r [u8]> + 'r,
) -> impl Iterator<Item = Bytes> + 'r {
    let mut rows = rows.peekable();
    std::iter::from_fn(move || {
        let first = rows.next()?;
        let mut chunk = take();
        // A row larger than a chunk grows it (and it is not pooled afterwards).
        chunk.extend_from_slice(first);
        while let Some(row) = rows.next_if(|row| chunk.len() + row.len() <= CHUNK_BYTES) {
            chunk.extend_from_slice(row);
        }
        Some(Bytes::from_owner(Pooled(chunk)))
    })
}

/// Fills chunks row by row.
#[derive(Debug, Default)]
pub struct ChunkWriter {
    sealed: Vec<(usize, Bytes)>,
    sealed_len: usize,
    current: Vec<u8>,
}

impl ChunkWriter {
    /// Appends one row written by `encode`; returns the end of the row in the whole.
    pub fn row(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> usize {
        if self.current.capacity() - self.current.len() < ROW_HEADROOM {
            self.seal_current();
            self.current = take();
        }
        encode(&mut self.current);
        self.len()
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.sealed_len + self.current.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn seal_current(&mut self) {
        let chunk = std::mem::take(&mut self.current);
        if chunk.is_empty() {
            // Never filled (the first row, or a drained writer): back to the pool.
            drop(Pooled(chunk));
            return;
        }
        let len = chunk.len();
        self.sealed
            .push((self.sealed_len, Bytes::from_owner(Pooled(chunk))));
        self.sealed_len += len;
    }

    pub fn finish(mut self) -> Chunks {
        self.seal_current();
        Chunks {
            len: self.sealed_len,
            parts: std::mem::take(&mut self.sealed),
        }
    }
}

impl Drop for ChunkWriter {
    /// A dropped writer (a revoked partition's block) gives its open chunk back too.
    fn drop(&mut self) {
        drop(Pooled(std::mem::take(&mut self.current)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: usize, fill: u8) -> impl FnOnce(&mut Vec<u8>) {
        move |b: &mut Vec<u8>| b.extend(std::iter::repeat_n(fill, n))
    }

    #[test]
    fn rows_never_straddle_chunks_and_slices_cover_any_range() {
        let mut w = ChunkWriter::default();
        let mut ends = vec![0];
        let mut expected = Vec::new();
        for i in 0..200usize {
            let n = 1000 + (i * 7919) % 9000;
            let fill = (i % 251) as u8;
            expected.extend(std::iter::repeat_n(fill, n));
            ends.push(w.row(row(n, fill)));
        }
        assert_eq!(w.len(), expected.len());
        let chunks = w.finish();
        assert_eq!(chunks.len(), expected.len());
        assert!(
            chunks.parts.len() > 1,
            "{} bytes in one chunk",
            chunks.len()
        );
        for (at, chunk) in &chunks.parts {
            assert!(ends.contains(at) && ends.contains(&(at + chunk.len())));
        }
        for (start, end) in [
            (0, expected.len()),
            (5, 5),
            (ends[3], ends[190]),
            (1, 300_000),
        ] {
            assert_eq!(chunks.to_vec(start, end), expected[start..end]);
        }
        let pieces: Vec<Bytes> = chunks.slices(0, chunks.len()).collect();
        assert!(pieces.iter().all(|p| p.len() <= CHUNK_BYTES));
    }

    #[test]
    fn a_row_larger_than_a_chunk_is_kept_whole() {
        let mut w = ChunkWriter::default();
        w.row(row(10, 1));
        let end = w.row(row(3 * CHUNK_BYTES, 2));
        assert_eq!(end, 10 + 3 * CHUNK_BYTES);
        let chunks = w.finish();
        assert_eq!(chunks.to_vec(10, end), vec![2; 3 * CHUNK_BYTES]);
    }

    #[test]
    fn rows_are_found_whole_and_copied_in_any_order_into_full_chunks() {
        let mut w = ChunkWriter::default();
        let mut ends = vec![0];
        for i in 0..300usize {
            ends.push(w.row(row(1000 + (i * 7919) % 9000, (i % 251) as u8)));
        }
        let chunks = w.finish();
        let rows: Vec<&[u8]> = ends
            .windows(2)
            .map(|e| {
                chunks
                    .contiguous(e[0], e[1])
                    .expect("a row lies in one chunk")
            })
            .collect();
        assert_eq!(rows.len(), 300);
        assert_eq!(chunks.contiguous(ends[5], ends[299]), None, "spans chunks");
        assert_eq!(chunks.contiguous(0, chunks.len() + 1), None);

        let reversed: Vec<&[u8]> = rows.iter().rev().copied().collect();
        let pieces: Vec<Bytes> = copied_in_chunks(reversed.iter().copied()).collect();
        assert_eq!(pieces.concat(), reversed.concat());
        assert!(pieces.iter().all(|p| p.len() <= CHUNK_BYTES));
        assert!(
            pieces
                .iter()
                .rev()
                .skip(1)
                .all(|p| p.len() > CHUNK_BYTES - 10_000),
            "every chunk but the last is full to within a row"
        );

        let big = vec![7u8; 2 * CHUNK_BYTES];
        let pieces: Vec<Bytes> =
            copied_in_chunks([&b"a"[..], &big[..], &b"b"[..]].into_iter()).collect();
        assert_eq!(
            pieces.iter().map(Bytes::len).collect::<Vec<_>>(),
            [1, big.len(), 1]
        );
        assert_eq!(copied_in_chunks(std::iter::empty()).count(), 0);
    }

    #[test]
    fn an_empty_writer_seals_nothing() {
        let chunks = ChunkWriter::default().finish();
        assert!(chunks.is_empty());
        assert_eq!(chunks.slices(0, 0).count(), 0);
    }
}
