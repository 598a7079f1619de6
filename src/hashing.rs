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

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

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
