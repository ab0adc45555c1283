//! Metric label values that cost little per request: a route's or backend's name is made a
//! [`LabelText`] once, when the config is compiled, and a request's labels then clone it without
//! allocating and hash it as one word, where a `String` label was copied and hashed byte by byte
//! at every metric it counts in.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock};

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

/// The process's hasher for label texts: seeded at random once, so label values that come from
/// clients (model names) cannot be chosen to collide.
static TEXT_HASHER: LazyLock<foldhash::quality::RandomState> = LazyLock::new(Default::default);

/// A label value: shared text and its hash, computed once.
#[derive(Clone)]
pub struct LabelText {
    text: Arc<str>,
    hash: u64,
}

impl LabelText {
    /// The label value `text`.
    pub fn new(text: &str) -> Self {
        LabelText { text: Arc::from(text), hash: TEXT_HASHER.hash_one(text) }
    }
}

impl Default for LabelText {
    fn default() -> Self {
        LabelText::new("")
    }
}

impl std::fmt::Debug for LabelText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.text, f)
    }
}

impl PartialEq for LabelText {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}

impl Eq for LabelText {}

impl Hash for LabelText {
    /// Equal texts have equal hashes (one hasher per process), so hashing the word is enough.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Feeds `state` one word: `value` hashed with the process's fast hasher. prometheus-client's
/// series maps hash label sets with SipHash (~100 instructions per word written, seven series
/// per request); a label set that hashes through this costs one SipHash word whatever its size.
/// Equal values give equal words, so `Hash` stays consistent with `Eq`.
pub fn hash_as_word<T: Hash + ?Sized, H: Hasher>(value: &T, state: &mut H) {
    state.write_u64(TEXT_HASHER.hash_one(value));
}

impl EncodeLabelValue for LabelText {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&&*self.text, encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn equal_texts_are_one_key_whoever_made_them() {
        let (a, b) = (LabelText::new("route0"), LabelText::new(&String::from("route0")));
        assert_eq!(a, b);
        assert_ne!(a, LabelText::new("route1"));
        let set: HashSet<LabelText> = [a.clone(), b, a, LabelText::new("route1")].into_iter().collect();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn a_label_set_hashed_as_a_word_keeps_equal_sets_equal_and_tells_others_apart() {
        struct Word<T>(T);
        impl<T: Hash> Hash for Word<T> {
            fn hash<H: Hasher>(&self, state: &mut H) {
                hash_as_word(&self.0, state)
            }
        }
        let seeded = std::collections::hash_map::RandomState::new();
        let one = |v: (LabelText, u16, &str)| seeded.hash_one(Word(v));
        assert_eq!(one((LabelText::new("r"), 200, "chat")), one((LabelText::new("r"), 200, "chat")));
        assert_ne!(one((LabelText::new("r"), 200, "chat")), one((LabelText::new("r"), 500, "chat")));
        assert_ne!(one((LabelText::new("r"), 200, "chat")), one((LabelText::new("r"), 200, "embeddings")));
    }
}
