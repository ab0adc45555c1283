//! agentgateway's model cost catalog format (`config.modelCatalog`): per provider, per model,
//! USD rates per million tokens as decimal strings, with context-length tiers. Rates are kept
//! as integer micro-dollars per million tokens (at most 6 fractional digits, as agentgateway
//! allows), so prices add up exactly.

use std::collections::HashMap;

/// Catalog maps: looked up on every priced request (twice per model tried, dated and not),
/// where a `BTreeMap` compared the name with a dozen keys. A fixed seed: only the config
/// inserts, a client's model name is only looked up.
type Names<V> = HashMap<String, V, foldhash::fast::FixedState>;

use serde::Deserialize;

/// A whole catalog: provider name (`openai`, `anthropic`, `gcp.gemini`…) → its models.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Provider name → models.
    #[serde(default)]
    pub providers: Names<Provider>,
}

/// One provider's models.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Model id → prices.
    #[serde(default)]
    pub models: Names<Model>,
}

/// One model's prices.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Base rates.
    #[serde(default)]
    pub rates: Rates,
    /// Rates for requests whose context is over a threshold, overlaid on the base rates.
    #[serde(default)]
    pub tiers: Vec<Tier>,
    /// Free-form tags (kept for the format's sake; prices do not depend on them).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A context-length tier.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tier {
    /// Applies when the context (input and cache tokens) is over this many tokens.
    pub context_over: u64,
    /// Rates overlaid on the base rates.
    pub rates: Rates,
}

/// Rates in micro-dollars per million tokens; unset ones are not charged (reasoning and
/// audio fall back to the text rates).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rates {
    /// Fresh input tokens.
    pub input: Option<Money>,
    /// Output tokens.
    pub output: Option<Money>,
    /// Tokens read from the provider's cache.
    pub cache_read: Option<Money>,
    /// Tokens written to the provider's cache.
    pub cache_write: Option<Money>,
    /// Reasoning tokens (else the output rate).
    pub reasoning: Option<Money>,
    /// Input audio tokens (else the input rate).
    pub input_audio: Option<Money>,
    /// Output audio tokens (else the output rate).
    pub output_audio: Option<Money>,
}

/// USD per million tokens, in micro-dollars: `"2.5"` is 2_500_000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money(pub u64);

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Money::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Money {
    /// A non-negative decimal string with at most 6 fractional digits.
    pub fn parse(s: &str) -> Result<Money, String> {
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(frac) || (s.contains('.') && frac.is_empty()) {
            return Err(format!("invalid rate {s:?}: expected a non-negative decimal such as \"2.5\""));
        }
        if frac.len() > 6 {
            return Err(format!("invalid rate {s:?}: more than 6 fractional digits"));
        }
        let whole: u64 = whole.parse().map_err(|_| format!("invalid rate {s:?}: too large"))?;
        let frac: u64 = format!("{frac:0<6}").parse().unwrap_or(0);
        whole.checked_mul(1_000_000).and_then(|w| w.checked_add(frac)).map(Money).ok_or_else(|| format!("invalid rate {s:?}: too large"))
    }

    /// In dollars per million tokens.
    pub fn dollars(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

impl Rates {
    /// Whether no rate is set.
    pub fn is_empty(&self) -> bool {
        *self == Rates::default()
    }

    /// These rates with `delta`'s set ones in place.
    pub fn overlay(&self, delta: &Rates) -> Rates {
        Rates {
            input: delta.input.or(self.input),
            output: delta.output.or(self.output),
            cache_read: delta.cache_read.or(self.cache_read),
            cache_write: delta.cache_write.or(self.cache_write),
            reasoning: delta.reasoning.or(self.reasoning),
            input_audio: delta.input_audio.or(self.input_audio),
            output_audio: delta.output_audio.or(self.output_audio),
        }
    }
}

impl Model {
    /// The rates for a request with `context_tokens` of context: the highest tier it is over.
    pub fn effective_rates(&self, context_tokens: u64) -> Rates {
        match self.tiers.iter().filter(|t| context_tokens > t.context_over).max_by_key(|t| t.context_over) {
            Some(t) => self.rates.overlay(&t.rates),
            None => self.rates,
        }
    }
}

impl Catalog {
    /// Parses a JSON catalog (a `file` or an `inline` string, as agentgateway reads them)
    /// and checks its tiers.
    pub fn parse(text: &str) -> Result<Catalog, String> {
        let c: Catalog = serde_json::from_str(text).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    /// Tiers must rise strictly.
    pub fn validate(&self) -> Result<(), String> {
        for (p, provider) in &self.providers {
            for (m, model) in &provider.models {
                for pair in model.tiers.windows(2) {
                    if pair[1].context_over <= pair[0].context_over {
                        return Err(format!("{p}/{m}: tier thresholds must rise ({} after {})", pair[1].context_over, pair[0].context_over));
                    }
                }
            }
        }
        Ok(())
    }

    /// This catalog with `overlay`'s models in place (a model is replaced whole).
    pub fn override_with(mut self, overlay: Catalog) -> Catalog {
        for (p, provider) in overlay.providers {
            self.providers.entry(p).or_default().models.extend(provider.models);
        }
        self
    }

    /// The entry for exactly `model` of `provider`.
    pub fn resolve(&self, provider: &str, model: &str) -> Option<&Model> {
        self.providers.get(provider)?.models.get(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_exact_and_bounded() {
        assert_eq!(Money::parse("2.5"), Ok(Money(2_500_000)));
        assert_eq!(Money::parse("0.000001"), Ok(Money(1)));
        assert_eq!(Money::parse("15"), Ok(Money(15_000_000)));
        for bad in ["-1", "0.1234567", "", "1e3", "1.", ".5", "abc"] {
            assert!(Money::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_and_unknown_fields_are_refused() {
        assert!(Catalog::parse(r#"{"providers":{"openai":{"models":{"m":{"rates":{"input":2.5}}}}}}"#).is_err());
        assert!(Catalog::parse(r#"{"providers":{"openai":{"models":{"m":{"rates":{"inputCacheRead":"1"}}}}}}"#).is_err());
        assert!(Catalog::parse(r#"{"providers":{"openai":{"models":{"m":{"tiers":[{"contextOver":5,"rates":{}},{"contextOver":5,"rates":{}}]}}}}}"#).is_err());
    }

    #[test]
    fn the_highest_tier_applies_over_its_threshold() {
        let c = Catalog::parse(r#"{"providers":{"p":{"models":{"m":{"rates":{"input":"1","output":"10"},
            "tiers":[{"contextOver":100,"rates":{"input":"2"}},{"contextOver":500,"rates":{"input":"4"}}]}}}}}"#).unwrap();
        let m = c.resolve("p", "m").unwrap();
        assert_eq!(m.effective_rates(100).input, Some(Money(1_000_000)));
        assert_eq!(m.effective_rates(101).input, Some(Money(2_000_000)));
        assert_eq!(m.effective_rates(600).input, Some(Money(4_000_000)));
        assert_eq!(m.effective_rates(600).output, Some(Money(10_000_000)));
    }

    #[test]
    fn a_later_catalog_replaces_whole_models() {
        let base = Catalog::parse(r#"{"providers":{"openai":{"models":{"a":{"rates":{"input":"1","output":"2"}},"b":{"rates":{"input":"3"}}}}}}"#).unwrap();
        let top = Catalog::parse(r#"{"providers":{"openai":{"models":{"a":{"rates":{"output":"8"}}}}}}"#).unwrap();
        let c = base.override_with(top);
        assert_eq!(c.resolve("openai", "a").unwrap().rates.input, None);
        assert_eq!(c.resolve("openai", "b").unwrap().rates.input, Some(Money(3_000_000)));
        assert!(c.resolve("anthropic", "a").is_none());
    }
}
