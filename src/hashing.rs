//! The hash maps of the per-event path: offsets per partition, the join's keys, partition
//! clocks, the job cache, actor kinds.
//!
//! Why not std's `HashMap` there: SipHash was about 2.5 % of the in-process path's samples
//! (benches/README.md, "Seventh session"); foldhash hashes short keys several times faster.
//! Keys come from what senders write (author names, IP addresses, project ids), so each map
//! is still seeded at random, as std's are: a sender cannot aim keys at one bucket without
//! knowing the seed.

/// A hash map with foldhash, seeded at random.
pub type HashMap<K, V> = std::collections::HashMap<K, V, RandomState>;

/// A hash set with foldhash, seeded at random.
pub type HashSet<K> = std::collections::HashSet<K, RandomState>;

/// The random seed behind both, for a digest held in memory (`correlate::join`'s content keys).
pub type RandomState = foldhash::fast::RandomState;

/// `digest` (at most 32 bytes) appended to `out` as lowercase hex: the per-event keys
/// (`normalize::dedup`'s content keys, `ingest::correlation::record_key`). Written into a
/// stack buffer first: `hex::encode` builds its string a character at a time
/// (benches/README.md, "Eighteenth session").
pub fn push_hex(out: &mut String, digest: &[u8]) {
    debug_assert!(digest.len() <= 32, "a digest of {} bytes", digest.len());
    let digest = &digest[..digest.len().min(32)];
    let mut buf = [0u8; 64];
    let hex = &mut buf[..2 * digest.len()];
    // Twice the digest's length always fits its hex digits, which are ASCII.
    let _ = hex::encode_to_slice(digest, hex);
    out.push_str(std::str::from_utf8(hex).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn push_hex_appends_what_hex_encode_writes() {
        for digest in [&[][..], &[0x00, 0xab, 0xff], &[0x5a; 16], &[0xc3; 32]] {
            let mut out = String::from("prefix:");
            push_hex(&mut out, digest);
            assert_eq!(out, format!("prefix:{}", hex::encode(digest)));
        }
    }

    /// Two maps hash the same key differently: the seed is not a constant an attacker could
    /// precompute collisions for.
    #[test]
    fn each_map_is_seeded_at_random() {
        let a: HashMap<&str, ()> = HashMap::default();
        let b: HashMap<&str, ()> = HashMap::default();
        let key = "alice@10.0.0.1";
        assert_ne!(a.hasher().hash_one(key), b.hasher().hash_one(key));
    }
}
