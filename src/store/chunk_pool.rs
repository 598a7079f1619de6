//! The free chunks of `store::chunks`, kept for the next batch.
//!
//! Why a batch's worth: a chunk freed because the pool is full goes back to the kernel at
//! once (mimalloc purges freed memory at once, `crate::allocator`), so the next batch's new
//! chunk is faulted in and zeroed page by page while rows are written into it. With room for
//! 128 chunks (32 MiB) beside 48 MiB batches, those page faults were about 4 % of
//! tokentrail's samples while it drained the 1 M backlog (benches/README.md, "Seventeenth
//! session"). The ingest app makes room for what its batches hold ([`make_room_for`]); once
//! nothing is buffered it frees what is beyond the default ([`release_surplus`]), so a
//! process that has gone quiet does not keep a backlog's memory.

use std::sync::Mutex;

/// Capacity of a pooled chunk, and so the most bytes the writer hands the HTTP client at once.
/// hyper copies each body piece into its connection's write buffer and stops taking pieces
/// once that holds about 400 KiB, so a piece this small keeps the copy under a megabyte per
/// INSERT; a whole block as one piece was copied whole (heaptrack on the 1M backlog: 49 MB of
/// the 192 MB heap peak; benches/README.md, "Peak memory").
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Free chunks kept when nothing asked for more, and what a quiet process keeps
/// ([`release_surplus`]): 32 MiB.
const DEFAULT_ROOM: usize = 128;

static POOL: Mutex<Pool> = Mutex::new(Pool::new());

/// A chunk of [`CHUNK_BYTES`] capacity: a free one when there is one, else a new one.
pub(super) fn take() -> Vec<u8> {
    let pooled = lock().free.pop();
    pooled.unwrap_or_else(|| Vec::with_capacity(CHUNK_BYTES))
}

/// Keeps `chunk` for reuse when it is a whole chunk and there is room; frees it otherwise.
pub(super) fn give(chunk: Vec<u8>) {
    lock().give(chunk);
}

/// Room for `bytes` of free chunks (never less than the default): the ingest app's batches,
/// so the chunks of a written batch are reused by the next ones instead of being freed.
pub fn make_room_for(bytes: usize) {
    lock().make_room_for(bytes);
}

/// Frees the free chunks beyond the default room, keeping the room for the next burst.
pub fn release_surplus() {
    lock().release_surplus();
}

fn lock() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

struct Pool {
    free: Vec<Vec<u8>>,
    room: usize,
}

impl Pool {
    const fn new() -> Self {
        Pool {
            free: Vec::new(),
            room: DEFAULT_ROOM,
        }
    }

    fn make_room_for(&mut self, bytes: usize) {
        self.room = (bytes / CHUNK_BYTES).max(DEFAULT_ROOM);
    }

    fn give(&mut self, mut chunk: Vec<u8>) {
        // A chunk grown for a larger row is not one the writer would take.
        if chunk.capacity() != CHUNK_BYTES || self.free.len() >= self.room {
            return;
        }
        chunk.clear();
        self.free.push(chunk);
    }

    fn release_surplus(&mut self) {
        self.free.truncate(DEFAULT_ROOM);
        self.free.shrink_to(DEFAULT_ROOM);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(n: usize) -> impl Iterator<Item = Vec<u8>> {
        (0..n).map(|_| Vec::with_capacity(CHUNK_BYTES))
    }

    #[test]
    fn a_pool_keeps_chunks_up_to_its_room_and_releases_the_surplus_to_the_default() {
        let mut pool = Pool::new();
        chunks(DEFAULT_ROOM + 10).for_each(|c| pool.give(c));
        assert_eq!(pool.free.len(), DEFAULT_ROOM);

        pool.make_room_for((DEFAULT_ROOM + 300) * CHUNK_BYTES);
        chunks(400).for_each(|c| pool.give(c));
        assert_eq!(pool.free.len(), DEFAULT_ROOM + 300);

        pool.release_surplus();
        assert_eq!(pool.free.len(), DEFAULT_ROOM);
        assert_eq!(
            pool.room,
            DEFAULT_ROOM + 300,
            "the room stays for the next burst"
        );
    }

    #[test]
    fn only_whole_chunks_are_kept() {
        let mut pool = Pool::new();
        pool.give(Vec::with_capacity(3 * CHUNK_BYTES));
        pool.give(Vec::with_capacity(10));
        let mut used = Vec::with_capacity(CHUNK_BYTES);
        used.extend_from_slice(b"row");
        pool.give(used);
        assert_eq!(pool.free.len(), 1);
        assert!(pool.free[0].is_empty(), "a kept chunk is cleared");
    }

    #[test]
    fn room_is_never_below_the_default() {
        let mut pool = Pool::new();
        pool.make_room_for(CHUNK_BYTES);
        assert_eq!(pool.room, DEFAULT_ROOM);
    }
}
