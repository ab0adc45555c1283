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

/// The backend index stored in each selector entry.
#[derive(Clone, Copy)]
struct BackendIndex(usize);

impl WeightedPicker {
    /// Builds a picker; a weight of 0 means the backend is never chosen.
    pub fn new(weights: &[u32]) -> Result<Self, String> {
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
}
