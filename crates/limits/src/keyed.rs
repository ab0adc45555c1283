//! Buckets by key (an API key, a user, a model, an IP — whatever the policy's CEL `key`
//! says), in shards so worker threads rarely wait on each other. The number of keys is
//! bounded: full buckets are forgotten first (they hold nothing a new bucket would not), and
//! a map still full after that refuses to track more keys, counting them in one overflow
//! bucket instead of growing without bound.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::bucket::{Bucket, Rate};

const SHARDS: usize = 16;

/// A full shard is swept for full buckets at most this often (a sweep walks the shard).
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug)]
struct Shard {
    map: HashMap<String, Arc<Bucket>>,
    last_sweep: Option<Instant>,
}

/// Most keys remembered per policy and limit.
pub const MAX_KEYS: usize = 100_000;

/// Buckets of one limit, one per key.
#[derive(Debug)]
pub struct KeyedBuckets {
    /// The shape of every bucket.
    pub rate: Rate,
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    overflow: Arc<Bucket>,
}

impl KeyedBuckets {
    /// No keys yet.
    pub fn new(rate: Rate) -> KeyedBuckets {
        KeyedBuckets {
            rate,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard { map: HashMap::new(), last_sweep: None })).collect(),
            hasher: Default::default(),
            overflow: Arc::new(Bucket::new(rate, Instant::now())),
        }
    }

    /// The bucket of `key`, made full on first use.
    pub fn bucket(&self, key: &str, now: Instant) -> Arc<Bucket> {
        let mut h = self.hasher.build_hasher();
        key.hash(&mut h);
        let shard = &self.shards[h.finish() as usize % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = shard.map.get(key) {
            return b.clone();
        }
        if shard.map.len() >= MAX_KEYS / SHARDS {
            if shard.last_sweep.is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY) {
                shard.map.retain(|_, b| Arc::strong_count(b) > 1 || !b.is_full(now));
                shard.last_sweep = Some(now);
            }
            if shard.map.len() >= MAX_KEYS / SHARDS {
                return self.overflow.clone();
            }
        }
        let b = Arc::new(Bucket::new(self.rate, now));
        shard.map.insert(key.to_string(), b.clone());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keys_have_their_own_buckets_and_the_map_is_bounded() {
        let now = Instant::now();
        let k = KeyedBuckets::new(Rate { max: 1, per_fill: 1, interval: Duration::from_secs(3600) });
        assert!(k.bucket("a", now).take(1, now).allowed);
        assert!(!k.bucket("a", now).take(1, now).allowed);
        assert!(k.bucket("b", now).take(1, now).allowed);
        for i in 0..MAX_KEYS * 2 {
            k.bucket(&format!("k{i}"), now).take(1, now);
        }
        let held: usize = k.shards.iter().map(|s| s.lock().unwrap().map.len()).sum();
        assert!(held <= MAX_KEYS, "{held} keys held");
        // Past the bound, new keys share the overflow bucket (limited, not unlimited).
        let later = now + Duration::from_millis(1);
        assert!(!k.bucket("fresh-1", later).take(1, later).allowed);
        // Once buckets refill (full again), a sweep frees their room.
        let much_later = now + Duration::from_secs(7200);
        assert!(k.bucket("fresh-2", much_later).take(1, much_later).allowed);
    }
}
