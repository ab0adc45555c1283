//! Weighted choice between a route's backends, using Pingora's weighted round robin.
//! Backends are resolved lazily at request time, so the selector works on indexes:
//! each entry carries its backend's index in `Backend::ext`.

use std::collections::BTreeSet;
use std::sync::Arc;

use pingora::lb::selection::{BackendIter, BackendSelection, RoundRobin};
use pingora::lb::Backend;

/// Picks a backend index in proportion to the configured weights.
pub struct WeightedPicker {
    selector: Arc<RoundRobin>,
}

impl std::fmt::Debug for WeightedPicker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WeightedPicker")
    }
}

/// Largest weight kept: Pingora's selection holds one slot per unit of weight, so weights
/// are reduced (by their common divisor, then scaled) to at most this, not to gigabytes.
const MAX_WEIGHT: u64 = 1000;

/// `weights` in the same proportions (to 1 in 1000), none above [`MAX_WEIGHT`]; a non-zero
/// weight stays non-zero.
fn scaled(weights: &[u32]) -> Vec<u32> {
    let gcd = |mut a: u64, mut b: u64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let divisor = weights.iter().fold(0u64, |g, w| gcd(g, u64::from(*w))).max(1);
    let reduced: Vec<u64> = weights.iter().map(|w| u64::from(*w) / divisor).collect();
    let max = reduced.iter().copied().max().unwrap_or(0);
    if max <= MAX_WEIGHT {
        return reduced.into_iter().map(|w| w as u32).collect();
    }
    reduced.into_iter().map(|w| if w == 0 { 0 } else { (w * MAX_WEIGHT / max).max(1) as u32 }).collect()
}

/// The backend index stored in each selector entry.
#[derive(Clone, Copy)]
struct BackendIndex(usize);

impl WeightedPicker {
    /// Builds a picker; a weight of 0 means the backend is never chosen.
    pub fn new(weights: &[u32]) -> Result<Self, String> {
        let weights = scaled(weights);
        let mut set = BTreeSet::new();
        for (i, w) in weights.iter().enumerate().filter(|(_, w)| **w > 0) {
            // A distinct placeholder address per index: selection never dials it.
            let port = u16::try_from(i + 1).map_err(|_| "too many backends")?;
            let mut b = Backend::new_with_weight(&format!("127.0.0.1:{port}"), *w as usize)
                .map_err(|e| e.to_string())?;
            b.ext.insert(BackendIndex(i));
            set.insert(b);
        }
        if set.is_empty() {
            return Err("every backend has weight 0".into());
        }
        Ok(WeightedPicker { selector: Arc::new(RoundRobin::build(&set)) })
    }

    /// The index of the next backend.
    pub fn pick(&self) -> usize {
        let mut iter = self.selector.iter(b"");
        iter.next().and_then(|b| b.ext.get::<BackendIndex>().map(|i| i.0)).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_weights() {
        let p = WeightedPicker::new(&[3, 1, 0]).unwrap();
        let mut counts = [0; 3];
        for _ in 0..400 {
            counts[p.pick()] += 1;
        }
        assert_eq!(counts[2], 0);
        assert_eq!(counts[0], 300);
        assert_eq!(counts[1], 100);
    }

    #[test]
    fn huge_weights_are_scaled_not_allocated() {
        assert_eq!(scaled(&[4_000_000_000, 2_000_000_000, 0]), vec![2, 1, 0]);
        assert_eq!(scaled(&[u32::MAX, 1]), vec![1000, 1]);
        let p = WeightedPicker::new(&[u32::MAX, u32::MAX - 1]).unwrap();
        let mut counts = [0; 2];
        for _ in 0..2000 {
            counts[p.pick()] += 1;
        }
        assert!(counts[0] > 900 && counts[1] > 900, "{counts:?}");
    }
}
