//! The `ai` backend an `llm:` model stands for: its provider (built-in or preset), `params`
//! (`baseUrl`, `apiKey`, overrides, cloud fields) and policy fields, written as the `ai:` block
//! a `binds:` config would have.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::backend::AiBackend;
use super::llm::{LlmParams, ModelPolicies};

/// The paths an `llm:` endpoint serves and their API (the model list is the router's own).
const ROUTES: &[(&str, &str)] = &[
    ("/v1/chat/completions", "completions"),
    ("/v1/messages", "messages"),
    ("/v1/messages/count_tokens", "anthropicTokenCount"),
    ("/v1/responses", "responses"),
    ("/v1/responses/compact", "detect"),
    ("/v1/embeddings", "embeddings"),
    ("/v1/rerank", "rerank"),
    ("/v2/rerank", "rerank"),
    (":generateContent", "generateContent"),
    (":streamGenerateContent", "generateContent"),
    (":countTokens", "geminiCountTokens"),
    ("*", "passthrough"),
];

/// A preset's base URL (agentgateway's, all OpenAI-compatible).
fn preset_url(name: &str) -> Option<&'static str> {
    Some(match name {
        "cohere" => "https://api.cohere.ai/compatibility/v1",
        "ollama" => "http://localhost:11434/v1",
        "baseten" => "https://inference.baseten.co/v1",
        "cerebras" => "https://api.cerebras.ai/v1",
        "deepinfra" => "https://api.deepinfra.com/v1/openai",
        "deepseek" => "https://api.deepseek.com/v1",
        "groq" => "https://api.groq.com/openai/v1",
        "huggingface" => "https://router.huggingface.co/v1",
        "mistral" => "https://api.mistral.ai/v1",
        "openrouter" => "https://openrouter.ai/api/v1",
        "togetherai" => "https://api.together.xyz/v1",
        "xai" => "https://api.x.ai/v1",
        "fireworks" => "https://api.fireworks.ai/inference/v1",
        _ => return None,
    })
}

/// `scheme://host[:port][/path]` as (https, `host:port`, path prefix).
fn parse_base_url(url: &str) -> Result<(bool, String, Option<String>), String> {
    let (https, rest) = match url.split_once("://") {
        Some(("https", r)) => (true, r),
        Some(("http", r)) => (false, r),
        _ => return Err(format!("baseUrl `{url}`: expected http:// or https://")),
    };
    if rest.contains(['?', '#', '@']) {
        return Err(format!("baseUrl `{url}`: no user, query or fragment"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].trim_end_matches('/').to_string()).filter(|p| !p.is_empty())),
        None => (rest, None),
    };
    if authority.is_empty() {
        return Err(format!("baseUrl `{url}`: no host"));
    }
    let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()) && !authority.ends_with(']'));
    let host = if has_port { authority.to_string() } else { format!("{authority}:{}", if https { 443 } else { 80 }) };
    super::backend::validate_host_port(&host).map_err(|e| format!("baseUrl `{url}`: {e}"))?;
    Ok((https, host, path))
}

/// The `ai` backend a model stands for.
pub(super) fn model_backend(name: &str, params: &LlmParams, provider: &str, policies: &ModelPolicies) -> Result<AiBackend, String> {
    AiBackend::deserialize(model_backend_json(name, params, provider, policies)?).map_err(|e| e.to_string())
}

/// [`model_backend`] as the `ai:` block it is written as.
fn model_backend_json(name: &str, params: &LlmParams, provider: &str, policies: &ModelPolicies) -> Result<Value, String> {
    if params.tokenize == Some(true) {
        return Err("params.tokenize is not supported yet".into());
    }
    let model = params.model.clone();
    let mut ai = Map::new();
    ai.insert("name".into(), name.into());
    let mut base_url = params.base_url.clone();
    let spec = match provider {
        "openai" | "openAI" => json!({"openAI": {"model": model}}),
        "anthropic" => json!({"anthropic": {"model": model}}),
        "gemini" => json!({"gemini": {"model": model}}),
        "vertex" => {
            let project = params.vertex_project.clone().ok_or("the vertex provider needs params.vertexProject")?;
            json!({"vertex": {"model": model, "projectId": project, "region": params.vertex_region}})
        }
        "bedrock" => {
            let region = params.aws_region.clone().ok_or("the bedrock provider needs params.awsRegion")?;
            json!({"bedrock": {"model": model, "region": region}})
        }
        "azure" => {
            let resource = params.azure_resource_name.clone().ok_or("the azure provider needs params.azureResourceName")?;
            let kind = params.azure_resource_type.clone().ok_or("the azure provider needs params.azureResourceType")?;
            json!({"azure": {"model": model, "resourceName": resource, "resourceType": kind, "apiVersion": params.azure_api_version, "projectName": params.azure_project_name}})
        }
        "copilot" => return Err("provider `copilot` is not supported yet".into()),
        preset => {
            let url = preset_url(preset).ok_or_else(|| format!("unknown provider `{preset}`"))?;
            if base_url.is_none() && params.host_override.is_none() && params.path_override.is_none() {
                base_url = Some(url.into());
            }
            json!({"openAI": {"model": model}})
        }
    };
    ai.insert("provider".into(), strip_nulls(spec));
    let mut tls = policies.backend_tls.clone().or(policies.tls.clone());
    if let Some(url) = &base_url {
        let (https, host, prefix) = parse_base_url(url)?;
        ai.insert("hostOverride".into(), params.host_override.clone().unwrap_or(host).into());
        if let Some(p) = prefix.filter(|_| params.path_override.is_none()) {
            ai.insert("pathPrefix".into(), p.into());
        }
        if https && tls.is_none() {
            tls = Some(json!({}));
        }
    }
    for (key, v) in [("hostOverride", &params.host_override), ("pathOverride", &params.path_override), ("pathPrefix", &params.path_prefix)] {
        if let Some(v) = v {
            ai.insert(key.into(), v.clone().into());
        }
    }
    let mut policy = Map::new();
    let routes: Map<String, Value> = ROUTES.iter().map(|(p, t)| (p.to_string(), Value::from(*t))).collect();
    let mut ai_policy = json!({"routes": routes});
    for (key, v) in [("defaults", policies.defaults.clone().map(Value::Object)), ("overrides", policies.overrides.clone().map(Value::Object)), ("promptCaching", policies.prompt_caching.clone())] {
        if let Some(v) = v {
            ai_policy[key] = v;
        }
    }
    policy.insert("ai".into(), ai_policy);
    match (&policies.auth, &params.api_key) {
        (Some(_), Some(_)) => return Err("set params.apiKey or auth, not both".into()),
        (Some(auth), None) => {
            policy.insert("backendAuth".into(), auth.clone());
        }
        (None, Some(key)) => {
            policy.insert("backendAuth".into(), json!({"key": key}));
        }
        (None, None) => {}
    }
    if policies.backend_tls.is_some() && policies.tls.is_some() {
        return Err("set backendTLS or tls, not both".into());
    }
    if let Some(tls) = tls {
        policy.insert("backendTLS".into(), tls);
    }
    if let Some(h) = &policies.request_headers {
        policy.insert("requestHeaderModifier".into(), h.clone());
    }
    if let Some(h) = &policies.response_headers {
        policy.insert("responseHeaderModifier".into(), h.clone());
    }
    ai.insert("policies".into(), Value::Object(policy));
    Ok(Value::Object(ai))
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, strip_nulls(v))).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_and_presets() {
        assert_eq!(parse_base_url("https://api.groq.com/openai/v1/").unwrap(), (true, "api.groq.com:443".into(), Some("/openai/v1".into())));
        assert_eq!(parse_base_url("http://127.0.0.1:9000").unwrap(), (false, "127.0.0.1:9000".into(), None));
        assert!(parse_base_url("ftp://x").is_err() && parse_base_url("https://u@x").is_err() && parse_base_url("https://x/?a=1").is_err());
        let none = ModelPolicies::default();
        let b = model_backend_json("m", &LlmParams::default(), "groq", &none).unwrap();
        assert_eq!((b["hostOverride"].as_str(), b["pathPrefix"].as_str()), (Some("api.groq.com:443"), Some("/openai/v1")));
        assert_eq!(b["policies"]["backendTLS"], json!({}));
        assert_eq!(b["policies"]["ai"]["routes"]["/v1/messages"], "messages");
        let ollama = model_backend_json("m", &LlmParams::default(), "ollama", &none).unwrap();
        assert_eq!(ollama["hostOverride"], "localhost:11434");
        assert!(ollama["policies"].get("backendTLS").is_none());
        let keyed = LlmParams { api_key: Some(json!({"file": "/k"})), host_override: Some("h:1".into()), ..Default::default() };
        assert_eq!(model_backend_json("m", &keyed, "anthropic", &none).unwrap()["policies"]["backendAuth"], json!({"key": {"file": "/k"}}));
        assert!(model_backend_json("m", &LlmParams::default(), "nope", &none).is_err());
        assert!(model_backend_json("m", &LlmParams::default(), "bedrock", &none).unwrap_err().contains("awsRegion"));
    }

    #[test]
    fn params_become_the_provider_block_and_overrides() {
        let none = ModelPolicies::default();
        let azure = LlmParams {
            azure_resource_name: Some("res".into()),
            azure_resource_type: Some("foundry".into()),
            azure_project_name: Some("p1".into()),
            azure_api_version: Some("v1".into()),
            model: Some("gpt-4o".into()),
            ..Default::default()
        };
        let b = model_backend_json("m", &azure, "azure", &none).unwrap();
        assert_eq!(b["provider"], json!({"azure": {"model": "gpt-4o", "resourceName": "res", "resourceType": "foundry", "apiVersion": "v1", "projectName": "p1"}}));
        let vertex = LlmParams { vertex_project: Some("proj".into()), vertex_region: Some("us-east5".into()), ..Default::default() };
        assert_eq!(model_backend_json("m", &vertex, "vertex", &none).unwrap()["provider"], json!({"vertex": {"projectId": "proj", "region": "us-east5"}}));
        let bedrock = LlmParams { aws_region: Some("eu-west-1".into()), ..Default::default() };
        assert_eq!(model_backend_json("m", &bedrock, "bedrock", &none).unwrap()["provider"], json!({"bedrock": {"region": "eu-west-1"}}));
        let paths = LlmParams { base_url: Some("https://x.example/v9".into()), host_override: Some("h:1".into()), path_override: Some("/only".into()), ..Default::default() };
        let b = model_backend_json("m", &paths, "openai", &none).unwrap();
        // hostOverride and pathOverride win over what baseUrl would set; https still brings TLS.
        assert_eq!((b["hostOverride"].as_str(), b["pathOverride"].as_str(), b.get("pathPrefix")), (Some("h:1"), Some("/only"), None));
        assert_eq!(b["policies"]["backendTLS"], json!({}));
        let headers = ModelPolicies { request_headers: Some(json!({"remove": ["x"]})), response_headers: Some(json!({"set": {"y": "1"}})), ..Default::default() };
        let b = model_backend_json("m", &LlmParams::default(), "openai", &headers).unwrap();
        assert_eq!((&b["policies"]["requestHeaderModifier"], &b["policies"]["responseHeaderModifier"]), (&json!({"remove": ["x"]}), &json!({"set": {"y": "1"}})));
        assert!(model_backend_json("m", &LlmParams { api_key: Some(json!("k")), ..Default::default() }, "openai", &ModelPolicies { auth: Some(json!({"key": "j"})), ..Default::default() }).is_err());
    }
}
