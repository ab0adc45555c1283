//! Rewriting an OpenAI chat-completions request body: override the model, ask for usage
//! in streams, and read the fields the gateway records. Only the top level is parsed, and its
//! values are lent from the request's bytes (`JsonObject`): a megabyte prompt costs one
//! validation pass and one copy into the rewritten body, not a tree.

use bytes::Bytes;

use tollgate_core::json_object::JsonObject;
use tollgate_core::llm::{LlmParams, PromptMessage};

/// The rewritten body and what was learnt from it.
#[derive(Debug)]
pub struct RewrittenRequest {
    /// Bytes to send upstream.
    pub body: Vec<u8>,
    /// `model` as the client sent it.
    pub request_model: Option<String>,
    /// `stream: true`.
    pub streaming: bool,
    /// The gateway added `stream_options.include_usage`; the usage-only chunk is not the client's.
    pub injected_usage: bool,
    /// Sampling parameters.
    pub params: LlmParams,
    /// The prompt messages, when asked for.
    pub prompt: Option<Vec<PromptMessage>>,
}

/// Rewrites a chat-completions request; `want_prompt` also extracts the messages for telemetry.
/// The error is a message for a 400.
pub fn rewrite_completion_request(
    raw: &[u8],
    model_override: Option<&str>,
    want_prompt: bool,
) -> Result<RewrittenRequest, String> {
    let (mut rewritten, body) = rewrite_with(raw, model_override, want_prompt, |top, replace| top.rewrite(replace))?;
    rewritten.body = body;
    Ok(rewritten)
}

/// As [`rewrite_completion_request`], but the body comes back as pieces of `raw` around the
/// replaced values (stretches of at least `lend_min` bytes uncopied), for Pingora to send one
/// by one; `body` is left empty. A body whose keys repeat comes back as one copied piece.
pub fn rewrite_completion_request_parts(
    raw: &Bytes,
    model_override: Option<&str>,
    want_prompt: bool,
    lend_min: usize,
) -> Result<(RewrittenRequest, Vec<Bytes>), String> {
    rewrite_with(raw, model_override, want_prompt, |top, replace| {
        top.rewrite_parts(raw, replace, lend_min).unwrap_or_else(|| vec![Bytes::from(top.rewrite(replace))])
    })
}

/// Reads the request and makes its new body with `write` (given the values to replace).
fn rewrite_with<T>(
    raw: &[u8],
    model_override: Option<&str>,
    want_prompt: bool,
    write: impl FnOnce(&JsonObject, &[(&str, &[u8])]) -> T,
) -> Result<(RewrittenRequest, T), String> {
    let top = JsonObject::parse(raw).map_err(|e| format!("request body is not a JSON object: {e}"))?;
    let request_model = field::<String>(&top, "model")?;
    let streaming = field::<bool>(&top, "stream")?.unwrap_or(false);
    let params = LlmParams {
        temperature: field(&top, "temperature")?,
        top_p: field(&top, "top_p")?,
        max_tokens: field(&top, "max_completion_tokens")?.or(field(&top, "max_tokens")?),
        frequency_penalty: field(&top, "frequency_penalty")?,
        presence_penalty: field(&top, "presence_penalty")?,
        seed: field(&top, "seed")?,
    };
    let model = match model_override {
        Some(model) => Some(serde_json::to_vec(model).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut replaced: Vec<(&str, &[u8])> = Vec::new();
    if let Some(model) = &model {
        replaced.push(("model", model));
    }
    let mut injected_usage = false;
    let options: Vec<u8>;
    if streaming {
        let mut opts: serde_json::Map<String, serde_json::Value> = field(&top, "stream_options")?.unwrap_or_default();
        if opts.get("include_usage").and_then(|v| v.as_bool()) != Some(true) {
            opts.insert("include_usage".into(), true.into());
            options = serde_json::to_vec(&opts).map_err(|e| e.to_string())?;
            replaced.push(("stream_options", &options));
            injected_usage = true;
        }
    }
    let prompt = if want_prompt { Some(prompt_messages(field(&top, "messages")?.unwrap_or_default())) } else { None };
    let body = write(&top, &replaced);
    Ok((RewrittenRequest { body: Vec::new(), request_model, streaming, injected_usage, params, prompt }, body))
}

/// A message as clients send it: `content` is a string or a list of typed parts.
#[derive(serde::Deserialize)]
struct MessageIn {
    role: String,
    #[serde(default)]
    content: serde_json::Value,
}

/// Role and text of each message; text parts of multi-part content are joined.
fn prompt_messages(messages: Vec<MessageIn>) -> Vec<PromptMessage> {
    messages
        .into_iter()
        .map(|m| {
            let content = match m.content {
                serde_json::Value::String(s) => s,
                serde_json::Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => String::new(),
            };
            PromptMessage { role: m.role, content }
        })
        .collect()
}

/// Reads one top-level field; `null` and absent are `None`, a wrong type is an error.
fn field<T: serde::de::DeserializeOwned>(top: &JsonObject, name: &str) -> Result<Option<T>, String> {
    match top.get(name) {
        None | Some(b"null") => Ok(None),
        Some(raw) => serde_json::from_slice(raw).map(Some).map_err(|e| format!("invalid `{name}`: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_model_and_injects_usage() {
        let raw = br#"{"model":"any","messages":[{"role":"user","content":"hi"}],"stream":true,"temperature":0.5}"#;
        let out = rewrite_completion_request(raw, Some("qwen-plus"), true).unwrap();
        assert_eq!(out.prompt.unwrap(), vec![PromptMessage { role: "user".into(), content: "hi".into() }]);
        let v: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(v["model"], "qwen-plus");
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["messages"][0]["content"], "hi");
        assert_eq!(out.request_model.as_deref(), Some("any"));
        assert!(out.streaming && out.injected_usage);
        assert_eq!(out.params.temperature, Some(0.5));
    }

    #[test]
    fn keeps_client_usage_request_and_order() {
        let raw = br#"{"messages":[],"model":"m","stream":true,"stream_options":{"include_usage":true}}"#;
        let out = rewrite_completion_request(raw, None, false).unwrap();
        assert!(!out.injected_usage);
        assert!(std::str::from_utf8(&out.body).unwrap().starts_with(r#"{"messages":[],"model":"m""#));
    }

    #[test]
    fn values_pass_verbatim_and_a_repeated_model_is_replaced_once() {
        let raw = br#"{"model":"a","m\u0065ssages":[{"role":"user","content":"x\u00e9\n"}],"model":"b","n": 1.50}"#;
        let out = rewrite_completion_request(raw, Some("z"), false).unwrap();
        // Keys and values as written (an escaped key is the same key to any JSON reader).
        assert_eq!(std::str::from_utf8(&out.body).unwrap(), r#"{"model":"z","m\u0065ssages":[{"role":"user","content":"x\u00e9\n"}],"n":1.50}"#);
        assert_eq!(out.request_model.as_deref(), Some("b"));
    }

    #[test]
    fn a_large_body_comes_back_as_pieces_that_read_as_the_rewrite() {
        let raw = Bytes::from(format!(r#"{{"model":"any","messages":[{{"role":"user","content":"{}"}}],"stream":true}}"#, "x".repeat(100_000)));
        let (out, parts) = rewrite_completion_request_parts(&raw, Some("pinned"), false, 64 * 1024).unwrap();
        assert!(out.body.is_empty() && out.streaming && out.injected_usage);
        assert_eq!(out.request_model.as_deref(), Some("any"));
        assert!(parts.iter().any(|p| raw.as_ptr_range().contains(&p.as_ptr()) && p.len() > 100_000 - 10));
        let joined: serde_json::Value = serde_json::from_slice(&parts.concat()).unwrap();
        let whole: serde_json::Value = serde_json::from_slice(&rewrite_completion_request(&raw, Some("pinned"), false).unwrap().body).unwrap();
        assert_eq!(joined, whole);
    }

    #[test]
    fn multipart_prompt_text_is_joined() {
        let raw = br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{}},{"type":"text","text":"b"}]}]}"#;
        let out = rewrite_completion_request(raw, None, true).unwrap();
        assert_eq!(out.prompt.unwrap()[0].content, "a\nb");
    }

    #[test]
    fn rejects_malformed() {
        assert!(rewrite_completion_request(b"{not json", None, false).is_err());
        assert!(rewrite_completion_request(b"[1,2]", None, false).is_err());
        assert!(rewrite_completion_request(br#"{"model": 5}"#, None, false).is_err());
    }
}
