//! LLM cost: usage priced by a model catalog (agentgateway's `config.modelCatalog`), over a
//! built-in table of common models' list prices. The cost of an exchange is `llm.cost` in
//! CEL, the access log and traces, and the `gen_ai_client_cost` metric.
//!
//! As agentgateway does: the provider's answering model is looked up first, then the
//! requested one; cache reads and writes are priced apart when the model has those rates
//! (else they count as input); reasoning tokens are priced at their own rate or the output
//! rate; a tier applies when the context (input plus cache) is over its threshold. Beyond
//! agentgateway: a model id with a date (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`,
//! `claude-sonnet-4-5@20250929`) that is not in the catalog is priced as its undated id.

pub mod catalog;

use std::path::PathBuf;

use catalog::{Catalog, Money, Rates};
use serde::Deserialize;

use crate::llm::{LlmExchange, Usage};

/// List prices of common models (USD per million tokens), used unless the config's
/// catalogs say otherwise.
const BUILTIN: &str = include_str!("default_catalog.json");

/// Where `config.modelCatalog` reads catalog data.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CatalogSource {
    /// A JSON file.
    File {
        /// Its path.
        file: PathBuf,
    },
    /// JSON in a string.
    InlineText {
        /// The JSON.
        inline: String,
    },
    /// The catalog written out in the config.
    Inline {
        /// The catalog.
        inline: Catalog,
    },
}

/// The catalog requests are priced with: the built-in table with the config's sources over it.
#[derive(Debug, Clone)]
pub struct ModelCatalog {
    catalog: Catalog,
    /// Files it was read from (watched for changes).
    pub files: Vec<PathBuf>,
}

/// What an exchange cost, in USD.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    /// Everything.
    pub total: f64,
    /// Fresh input tokens.
    pub input: f64,
    /// Output tokens (reasoning apart).
    pub output: f64,
    /// Cache reads.
    pub cache_read: f64,
    /// Cache writes.
    pub cache_write: f64,
    /// Reasoning tokens.
    pub reasoning: f64,
    /// The rates applied (USD per million tokens).
    pub rates: Rates,
}

impl Default for ModelCatalog {
    fn default() -> Self {
        ModelCatalog { catalog: builtin(), files: Vec::new() }
    }
}

fn builtin() -> Catalog {
    let mut c = Catalog::parse(BUILTIN).expect("the built-in catalog parses");
    // Vertex serves Google's and Anthropic's models under their own names; Azure OpenAI's.
    let mut vertex = c.providers.get("gcp.gemini").cloned().unwrap_or_default();
    vertex.models.extend(c.providers.get("anthropic").map(|p| p.models.clone()).unwrap_or_default());
    c.providers.insert("gcp.vertex_ai".into(), vertex);
    let openai = c.providers.get("openai").cloned().unwrap_or_default();
    c.providers.insert("azure.ai.openai".into(), openai);
    c
}

impl ModelCatalog {
    /// The built-in table with `sources` over it, later ones first. A missing file is skipped
    /// with a warning (as agentgateway does); one that does not parse is an error naming it.
    pub fn load(sources: &[CatalogSource], warnings: &mut Vec<String>) -> Result<ModelCatalog, String> {
        let mut catalog = builtin();
        let mut files = Vec::new();
        for (i, source) in sources.iter().enumerate() {
            let layer = match source {
                CatalogSource::File { file } => {
                    files.push(file.clone());
                    match std::fs::read_to_string(file) {
                        Ok(text) => Catalog::parse(&text).map_err(|e| format!("config.modelCatalog[{i}]: {}: {e}", file.display()))?,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            warnings.push(format!("config.modelCatalog[{i}]: {} does not exist (yet); skipped", file.display()));
                            continue;
                        }
                        Err(e) => return Err(format!("config.modelCatalog[{i}]: {}: {e}", file.display())),
                    }
                }
                CatalogSource::InlineText { inline } => Catalog::parse(inline).map_err(|e| format!("config.modelCatalog[{i}].inline: {e}"))?,
                CatalogSource::Inline { inline } => {
                    inline.validate().map_err(|e| format!("config.modelCatalog[{i}].inline: {e}"))?;
                    inline.clone()
                }
            };
            catalog = catalog.override_with(layer);
        }
        Ok(ModelCatalog { catalog, files })
    }

    /// The cost of `llm`'s usage, when it has usage and a priced model.
    pub fn price(&self, llm: &LlmExchange) -> Option<Cost> {
        let usage = llm.usage?;
        let requested = llm.override_model.as_deref().or(llm.request_model.as_deref());
        let model = [llm.response_model.as_deref(), requested].into_iter().flatten().find_map(|m| self.lookup(llm.provider, m))?;
        let billed = Billed::from(&usage);
        let rates = model.effective_rates(billed.context());
        (!rates.is_empty()).then(|| billed.price(&rates))
    }

    fn lookup(&self, provider: &str, model: &str) -> Option<&catalog::Model> {
        self.catalog.resolve(provider, model).or_else(|| self.catalog.resolve(provider, undated(model)?))
    }
}

/// `model` without a trailing date (`-2024-08-06`, `-20250929`, `@20250929`).
fn undated(model: &str) -> Option<&str> {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // Every dated form ends in a digit: most names are done here, before any search.
    if !model.ends_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if let Some((base, date)) = model.rsplit_once('@') {
        return all_digits(date).then_some(base);
    }
    if let Some((base, date)) = model.rsplit_once('-').filter(|(_, d)| d.len() == 8 && all_digits(d)) {
        return Some(base).filter(|_| date.starts_with("20"));
    }
    // -YYYY-MM-DD
    let n = model.len();
    if n > 11 && model.as_bytes()[n - 11] == b'-' {
        let date = &model[n - 10..];
        let parts: Vec<&str> = date.split('-').collect();
        if parts.len() == 3 && parts.iter().zip([4, 2, 2]).all(|(p, l)| p.len() == l && all_digits(p)) {
            return Some(&model[..n - 11]);
        }
    }
    None
}

/// Usage split into what is billed apart. Tollgate's usage counts cache reads and writes
/// inside the input (OpenAI's convention, to which every provider's usage is normalised).
struct Billed {
    input: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
    reasoning: u64,
}

impl Billed {
    fn from(u: &Usage) -> Billed {
        let reasoning = u.reasoning_tokens.unwrap_or(0);
        Billed {
            input: u.input_tokens,
            cache_read: u.cached_input_tokens.unwrap_or(0),
            cache_write: u.cache_creation_input_tokens.unwrap_or(0),
            output: u.output_tokens.saturating_sub(reasoning),
            reasoning,
        }
    }

    /// Tokens of context (what tiers are chosen by): the whole input, cache included.
    fn context(&self) -> u64 {
        self.input
    }

    fn price(&self, r: &Rates) -> Cost {
        // Cache tokens without a rate of their own are billed as input.
        let cache_read = if r.cache_read.is_some() { self.cache_read } else { 0 };
        let cache_write = if r.cache_write.is_some() { self.cache_write } else { 0 };
        let input = self.input.saturating_sub(cache_read).saturating_sub(cache_write);
        let line = |tokens: u64, rate: Option<Money>| rate.map_or(0u128, |m| tokens as u128 * m.0 as u128);
        // Micro-dollars per million tokens × tokens = 1e-12 USD.
        let usd = |pico: u128| pico as f64 / 1e12;
        let parts = [
            line(input, r.input),
            line(self.output, r.output),
            line(cache_read, r.cache_read),
            line(cache_write, r.cache_write),
            line(self.reasoning, r.reasoning.or(r.output)),
        ];
        Cost {
            total: usd(parts.iter().sum()),
            input: usd(parts[0]),
            output: usd(parts[1]),
            cache_read: usd(parts[2]),
            cache_write: usd(parts[3]),
            reasoning: usd(parts[4]),
            rates: *r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::RouteType;

    fn exchange(provider: &'static str, request: &str, response: Option<&str>, usage: Usage) -> LlmExchange {
        let mut l = LlmExchange::new(provider, "b", RouteType::Completions);
        l.request_model = Some(request.into());
        l.response_model = response.map(str::to_string);
        l.usage = Some(usage);
        l
    }

    fn usage(input: u64, cached: u64, written: u64, output: u64, reasoning: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            total_tokens: input + output,
            cached_input_tokens: Some(cached),
            cache_creation_input_tokens: Some(written),
            reasoning_tokens: Some(reasoning),
        }
    }

    #[test]
    fn builtin_prices_a_dated_openai_answer() {
        let c = ModelCatalog::default();
        // gpt-4o: 2.5 in, 1.25 cached, 10 out.
        let cost = c.price(&exchange("openai", "gpt-4o", Some("gpt-4o-2024-08-06"), usage(1_000_000, 400_000, 0, 100_000, 0))).unwrap();
        assert!((cost.input - 1.5).abs() < 1e-9 && (cost.cache_read - 0.5).abs() < 1e-9 && (cost.output - 1.0).abs() < 1e-9, "{cost:?}");
        assert!((cost.total - 3.0).abs() < 1e-9);
    }

    #[test]
    fn reasoning_at_the_output_rate_and_tiers_by_context() {
        let c = ModelCatalog::default();
        let small = c.price(&exchange("gcp.gemini", "gemini-2.5-pro", None, usage(100_000, 0, 0, 1_000_000, 400_000))).unwrap();
        assert!((small.output - 6.0).abs() < 1e-9 && (small.reasoning - 4.0).abs() < 1e-9, "{small:?}");
        let big = c.price(&exchange("gcp.gemini", "gemini-2.5-pro", None, usage(300_000, 0, 0, 0, 0))).unwrap();
        assert!((big.input - 0.75).abs() < 1e-9, "{big:?}"); // 2.5 per million over 200k
    }

    #[test]
    fn anthropic_cache_writes_and_vertex_names() {
        let c = ModelCatalog::default();
        let cost = c.price(&exchange("gcp.vertex_ai", "claude-sonnet-4-5@20250929", None, usage(100_000, 0, 100_000, 0, 0))).unwrap();
        assert!((cost.cache_write - 0.375).abs() < 1e-9 && cost.input == 0.0, "{cost:?}");
        assert!(c.price(&exchange("openai", "made-up", None, usage(1, 0, 0, 1, 0))).is_none());
        assert!(c.price(&exchange("anthropic", "gpt-4o", None, usage(1, 0, 0, 1, 0))).is_none(), "catalogs are per provider");
    }

    #[test]
    fn config_sources_override_and_unpriced_cache_is_input() {
        let mut warnings = Vec::new();
        let sources = vec![
            CatalogSource::InlineText { inline: r#"{"providers":{"openai":{"models":{"gpt-4o":{"rates":{"input":"1","output":"2"}}}}}}"#.into() },
            CatalogSource::File { file: "/nonexistent/catalog.json".into() },
        ];
        let c = ModelCatalog::load(&sources, &mut warnings).unwrap();
        assert_eq!(warnings.len(), 1);
        let cost = c.price(&exchange("openai", "gpt-4o", None, usage(1_000_000, 500_000, 0, 1_000_000, 0))).unwrap();
        assert!((cost.input - 1.0).abs() < 1e-9 && cost.cache_read == 0.0 && (cost.total - 3.0).abs() < 1e-9, "{cost:?}");
        let bad = vec![CatalogSource::InlineText { inline: "{".into() }];
        assert!(ModelCatalog::load(&bad, &mut warnings).unwrap_err().contains("modelCatalog[0]"));
    }

    #[test]
    fn dates_are_recognised() {
        assert_eq!(undated("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(undated("claude-sonnet-4-5-20250929"), Some("claude-sonnet-4-5"));
        assert_eq!(undated("claude-sonnet-4-5@20250929"), Some("claude-sonnet-4-5"));
        assert_eq!(undated("gpt-4o"), None);
        assert_eq!(undated("gemini-2.5-flash"), None);
    }
}
