//! `provider.custom`: a server described by the APIs it accepts (`formats`). For each call the
//! gateway picks the API the server speaks that is closest to the client's (agentgateway's
//! preference table: a Chat client goes to Chat, else Messages; a Messages client to Messages,
//! else Chat), and the call is then served as by the `openAI` or `anthropic` provider of that
//! API, at the format's `path` when one is given.

use std::borrow::Cow;

use super::AiTarget;
use crate::config::backend::{CustomProvider, ProviderFormat};
use crate::llm::{AiProvider, RouteType};

/// Telemetry names a custom provider may take (`providerOverride`), so that its cost resolves
/// under the right catalog key.
const PROVIDER_NAMES: &[&str] = &[
    "custom", "openai", "anthropic", "gcp.gemini", "gcp.vertex_ai", "aws.bedrock", "azure.ai.openai", "cohere", "mistral", "groq",
    "deepseek", "togetherai", "fireworks", "xai", "cerebras", "ollama", "openrouter", "deepinfra", "huggingface", "baseten",
];

/// The formats of a custom provider, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomFormats {
    formats: Vec<(ProviderFormat, Option<String>)>,
}

/// The formats and the telemetry name of `provider.custom`.
pub(super) fn compile(c: &CustomProvider) -> Result<(CustomFormats, &'static str), String> {
    if c.formats.is_empty() {
        return Err("ai.provider.custom.formats: at least one format is required".into());
    }
    let mut formats = Vec::new();
    for f in &c.formats {
        if matches!(f.format, ProviderFormat::GenerateContent | ProviderFormat::GeminiCountTokens | ProviderFormat::Realtime) {
            return Err(format!("ai.provider.custom.formats: type `{:?}` is not supported yet (completions, messages, responses, embeddings, anthropicTokenCount and rerank are)", f.format));
        }
        if let Some(p) = &f.path {
            if !p.starts_with('/') || p.chars().any(|c| c.is_ascii_control() || c == ' ' || c == '#') {
                return Err(format!("ai.provider.custom.formats: path `{p}` must be an absolute path"));
            }
        }
        formats.push((f.format, f.path.clone()));
    }
    let name = match c.provider_override.as_deref() {
        None => "custom",
        Some(n) => PROVIDER_NAMES.iter().copied().find(|k| *k == n).ok_or_else(|| format!("ai.provider.custom.providerOverride `{n}` is not supported yet (one of: {})", PROVIDER_NAMES.join(", ")))?,
    };
    Ok((CustomFormats { formats }, name))
}

impl CustomFormats {
    /// The format (and its path) a call of `kind` goes to, by preference.
    fn pick(&self, kind: RouteType) -> Option<(ProviderFormat, Option<&str>)> {
        use ProviderFormat as F;
        let preferences: &[F] = match kind {
            RouteType::Completions | RouteType::GenerateContent => &[F::Completions, F::Messages],
            RouteType::Messages => &[F::Messages, F::Completions],
            RouteType::Responses => &[F::Responses],
            RouteType::Embeddings => &[F::Embeddings],
            RouteType::AnthropicTokenCount => &[F::AnthropicTokenCount],
            RouteType::Rerank => &[F::Rerank],
            RouteType::GeminiCountTokens | RouteType::Models | RouteType::Passthrough | RouteType::Detect => &[],
        };
        preferences.iter().find_map(|want| self.formats.iter().find(|(f, _)| f == want).map(|(f, p)| (*f, p.as_deref())))
    }
}

impl AiTarget {
    /// The target a call of `kind` goes to: itself, or for a custom provider, the provider of the
    /// API it picks for the call (with the format's path). The error is a message for a 400.
    pub fn for_route(&self, kind: RouteType) -> Result<Cow<'_, AiTarget>, String> {
        let Some(custom) = &self.custom else { return Ok(Cow::Borrowed(self)) };
        let mut t = self.clone();
        match custom.pick(kind) {
            Some((format, path)) => {
                t.provider = if matches!(format, ProviderFormat::Messages | ProviderFormat::AnthropicTokenCount) { AiProvider::Anthropic } else { AiProvider::OpenAi };
                // The format's path; else `pathOverride`, which is for chat calls.
                let chat = matches!(kind, RouteType::Completions | RouteType::Messages);
                t.path_override = path.map(str::to_string).or_else(|| self.path_override.clone().filter(|_| chat));
            }
            // Token counts are the gateway's estimate; listings and passthrough go as they are.
            None if matches!(kind, RouteType::AnthropicTokenCount | RouteType::GeminiCountTokens | RouteType::Models | RouteType::Passthrough | RouteType::Detect) => {
                t.provider = AiProvider::OpenAi;
                t.path_override = None;
            }
            None => return Err(format!("the custom provider `{}` declares no format for this API", self.name)),
        }
        Ok(Cow::Owned(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::backend::ProviderFormatConfig;

    fn formats(list: &[(ProviderFormat, Option<&str>)]) -> CustomFormats {
        let c = CustomProvider { model: None, provider_override: None, formats: list.iter().map(|(f, p)| ProviderFormatConfig { format: *f, path: p.map(str::to_string) }).collect() };
        compile(&c).unwrap().0
    }

    #[test]
    fn preference_table() {
        use ProviderFormat as F;
        let messages_only = formats(&[(F::Messages, Some("/api/messages"))]);
        assert_eq!(messages_only.pick(RouteType::Completions), Some((F::Messages, Some("/api/messages"))));
        let chat_only = formats(&[(F::Completions, None)]);
        assert_eq!(chat_only.pick(RouteType::Messages), Some((F::Completions, None)));
        assert_eq!(chat_only.pick(RouteType::Embeddings), None);
        let both = formats(&[(F::Completions, None), (F::Messages, None)]);
        assert_eq!(both.pick(RouteType::Messages).map(|p| p.0), Some(F::Messages));
        assert_eq!(both.pick(RouteType::Completions).map(|p| p.0), Some(F::Completions));
    }

    #[test]
    fn bad_custom_providers() {
        let c = |yaml: &str| compile(&serde_yaml_ng::from_str::<CustomProvider>(yaml).unwrap()).map(|_| ());
        assert!(c("{formats: []}").is_err());
        assert!(c("{formats: [{type: realtime}]}").unwrap_err().contains("not supported yet"));
        assert!(c("{formats: [{type: completions, path: 'v1/x'}]}").is_err());
        assert!(c("{providerOverride: made-up, formats: [{type: completions}]}").unwrap_err().contains("not supported yet"));
        assert!(c("{providerOverride: mistral, formats: [{type: completions}]}").is_ok());
    }
}
