//! Limits counted in Redis (or Valkey), so that every tollgate process using the same server
//! holds one cap together. A tollgate extension (`redis:` on a `localRateLimit` entry).
//!
//! Admission design: one round trip per limit and request. A Lua script takes (or amends) the
//! bucket atomically on the server, with the server's clock (`TIME`), so replicas never race
//! or disagree about time; it implements the same bucket as the in-process one (starts full,
//! whole-interval fills, all-or-nothing takes, debt down to `-maxTokens` on amends) and lets
//! an idle bucket expire once it would be full again. There is no local fast path: a cached
//! allowance would let N replicas overshoot by N × the allowance, which is the failure this
//! exists to prevent. Every call has a deadline (`timeout`, default 100 ms); a failed or late
//! call is decided by `failureMode` (`failClosed`, the default as for agentgateway's
//! `remoteRateLimit`: 503; `failOpen`: the request goes on, logged once per outage). The
//! connection is made on first use and remade in the background after Redis comes back.
//! Counters are named by `redis.name` and the limit's shape, so a changed limit starts afresh.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use crate::bucket::{Outcome, Rate};
pub use crate::redis_conn::{FailureMode, RedisConfig, StoreFailure};
use crate::redis_conn::RedisConn;

/// The atomic take-or-amend. KEYS[1] the bucket; ARGV: max, per_fill, interval_ms, n, mode
/// (`take` or `amend`). Returns {allowed, tokens, ms to the next fill}.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
local iv = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local s = redis.call('HMGET', KEYS[1], 'tokens', 'last')
local tokens = tonumber(s[1])
local last = tonumber(s[2])
if tokens == nil or last == nil then
  tokens = max
  last = now
end
local k = math.floor((now - last) / iv)
if k > 0 then
  tokens = math.min(max, tokens + k * per)
  last = last + k * iv
end
local allowed = 1
if ARGV[5] == 'take' then
  if tokens >= n then tokens = tokens - n else allowed = 0 end
else
  tokens = math.max(-max, math.min(max, tokens - n))
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'last', last)
local fills = 1
if per > 0 and tokens < max then fills = math.ceil((max - tokens) / per) + 1 end
redis.call('PEXPIRE', KEYS[1], math.max(1000, fills * iv))
return {allowed, tokens, last + iv - now}
"#;

/// A limit's counters in Redis.
pub struct RedisBuckets {
    /// The connection (and its failure mode).
    pub conn: RedisConn,
    script: redis::Script,
    prefix: String,
    rate: Rate,
}

impl std::fmt::Debug for RedisBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisBuckets({})", self.prefix)
    }
}

impl RedisBuckets {
    /// Checks the config; connects on first use. `identity` names the limit (its shape).
    pub fn compile(config: RedisConfig, rate: Rate, identity: &str) -> Result<RedisBuckets, String> {
        let conn = RedisConn::compile(&config)?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        identity.hash(&mut h);
        let prefix = format!("tollgate:rl:{}:{:016x}", conn.name, h.finish());
        Ok(RedisBuckets { conn, script: redis::Script::new(SCRIPT), prefix, rate })
    }

    async fn call(&self, key: &str, n: i64, mode: &str) -> Result<(i64, i64, i64), StoreFailure> {
        let mut invocation = self.script.key(format!("{}:{key}", self.prefix));
        invocation
            .arg(self.rate.max)
            .arg(self.rate.per_fill)
            .arg(self.rate.interval.as_millis().max(1) as u64)
            .arg(n)
            .arg(mode);
        self.conn.invoke(&invocation).await
    }

    /// Takes `n` from `key`'s bucket.
    pub async fn take(&self, key: &str, n: u64) -> Result<Outcome, StoreFailure> {
        let (allowed, tokens, next_ms) = self.call(key, n.min(i64::MAX as u64) as i64, "take").await?;
        let reset = Duration::from_millis(next_ms.max(0) as u64);
        let allowed = allowed == 1;
        let retry_after = if allowed {
            Duration::ZERO
        } else if self.rate.per_fill == 0 || n > self.rate.max {
            Duration::from_secs(u64::from(u32::MAX))
        } else {
            let missing = (n as i64 - tokens).max(1) as u64;
            reset + self.rate.interval * (missing.div_ceil(self.rate.per_fill) - 1).min(u32::MAX as u64) as u32
        };
        Ok(Outcome { allowed, limit: self.rate.max, remaining: tokens.max(0) as u64, reset, retry_after })
    }

    /// Corrects an earlier take by `delta` (see `Bucket::amend`).
    pub async fn amend(&self, key: &str, delta: i64) {
        // The script's amend subtracts its argument (negative gives back).
        let _ = self.call(key, delta, "amend").await;
    }
}
