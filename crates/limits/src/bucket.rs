//! One token bucket with agentgateway's semantics: it starts full (`maxTokens`), gains
//! `tokensPerFill` for every whole `fillInterval` that passed, never above `maxTokens`, and a
//! take is all or nothing. Token limits may amend a take once the real usage is known, which
//! can leave the bucket in debt (negative) down to `-maxTokens`: the overshoot is paid back
//! from later fills instead of being forgiven.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bucket's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Capacity.
    pub max: u64,
    /// Tokens added per interval.
    pub per_fill: u64,
    /// The interval.
    pub interval: Duration,
}

/// What a take decided, for the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the tokens were taken.
    pub allowed: bool,
    /// The bucket's capacity.
    pub limit: u64,
    /// Tokens left after the take (0 when in debt).
    pub remaining: u64,
    /// Time until the next fill.
    pub reset: Duration,
    /// When refused: time until enough tokens will be there.
    pub retry_after: Duration,
}

#[derive(Debug)]
struct State {
    tokens: i64,
    last_fill: Instant,
}

/// A token bucket, safe to share between worker threads.
#[derive(Debug)]
pub struct Bucket {
    rate: Rate,
    state: Mutex<State>,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: Rate, now: Instant) -> Bucket {
        Bucket { rate, state: Mutex::new(State { tokens: rate.max as i64, last_fill: now }) }
    }

    fn refill(&self, s: &mut State, now: Instant) {
        let elapsed = now.saturating_duration_since(s.last_fill);
        let intervals = (elapsed.as_nanos() / self.rate.interval.as_nanos().max(1)) as u64;
        if intervals > 0 {
            let added = intervals.saturating_mul(self.rate.per_fill).min(i64::MAX as u64) as i64;
            s.tokens = s.tokens.saturating_add(added).min(self.rate.max as i64);
            s.last_fill += self.rate.interval * intervals.min(u32::MAX as u64) as u32;
        }
    }

    fn until_next_fill(&self, s: &State, now: Instant) -> Duration {
        (s.last_fill + self.rate.interval).saturating_duration_since(now)
    }

    /// Takes `n` tokens if all are there.
    pub fn take(&self, n: u64, now: Instant) -> Outcome {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.refill(&mut s, now);
        let n = n.min(i64::MAX as u64) as i64;
        let allowed = s.tokens >= n;
        if allowed {
            s.tokens -= n;
        }
        let reset = self.until_next_fill(&s, now);
        let retry_after = if allowed || self.rate.per_fill == 0 || n > self.rate.max as i64 {
            // Never enough: a take larger than the bucket (or a bucket that never fills).
            if allowed { Duration::ZERO } else { Duration::from_secs(u64::from(u32::MAX)) }
        } else {
            let missing = (n - s.tokens) as u64;
            let fills = missing.div_ceil(self.rate.per_fill);
            reset + self.rate.interval * (fills.saturating_sub(1)).min(u32::MAX as u64) as u32
        };
        Outcome { allowed, limit: self.rate.max, remaining: s.tokens.max(0) as u64, reset, retry_after }
    }

    /// Corrects an earlier take by `delta` tokens: positive takes more (into debt if need be,
    /// at most `maxTokens` below zero), negative gives back (never above `maxTokens`).
    pub fn amend(&self, delta: i64, now: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.refill(&mut s, now);
        let max = self.rate.max as i64;
        s.tokens = s.tokens.saturating_sub(delta).clamp(-max, max);
    }

    /// Whether the bucket is full (nothing to remember about it).
    pub fn is_full(&self, now: Instant) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.refill(&mut s, now);
        s.tokens >= self.rate.max as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn starts_full_fills_per_whole_interval_and_caps() {
        let t0 = Instant::now();
        let b = Bucket::new(Rate { max: 10, per_fill: 5, interval: SECOND }, t0);
        let taken = (0..30).filter(|_| b.take(1, t0).allowed).count();
        assert_eq!(taken, 10);
        let refused = b.take(1, t0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, SECOND);
        assert_eq!(refused.remaining, 0);
        assert!(!b.take(1, t0 + SECOND / 2).allowed, "a partial interval adds nothing");
        assert_eq!((0..30).filter(|_| b.take(1, t0 + SECOND).allowed).count(), 5);
        assert_eq!((0..30).filter(|_| b.take(1, t0 + SECOND * 60).allowed).count(), 10, "never above max");
    }

    #[test]
    fn takes_are_all_or_nothing_and_amends_can_go_into_debt() {
        let t0 = Instant::now();
        let b = Bucket::new(Rate { max: 100, per_fill: 100, interval: SECOND * 60 }, t0);
        assert!(!b.take(101, t0).allowed);
        assert!(b.take(60, t0).allowed);
        assert!(!b.take(41, t0).allowed);
        b.amend(90, t0);
        assert_eq!(b.take(0, t0).remaining, 0);
        assert!(!b.take(51, t0 + SECOND * 60).allowed, "the debt of 50 is paid from the next fill");
        assert!(b.take(50, t0 + SECOND * 60).allowed);
        b.amend(-1000, t0 + SECOND * 60);
        assert!(b.is_full(t0 + SECOND * 60));
    }
}
