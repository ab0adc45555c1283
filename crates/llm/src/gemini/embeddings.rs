//! OpenAI's embeddings API on Gemini: `input` texts as one `batchEmbedContents` call (one
//! request per text, `dimensions` as `outputDimensionality`), and Gemini's vectors as OpenAI's
//! list: floats, or with `encoding_format: base64` (what OpenAI's SDKs ask for) little-endian
//! float32 bytes in base64, as OpenAI sends them. Token arrays have no Gemini equivalent: a 400
//! naming them.

use serde_json::{json, Map, Value};

use tollgate_core::llm::LlmParams;

use crate::translation::TranslatedRequest;

/// How the client wants the vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// JSON numbers.
    #[default]
    Float,
    /// Base64 of little-endian float32s.
    Base64,
}

/// The Gemini body, the model its path names (`models/{model}:batchEmbedContents`), and the
/// encoding the answer takes.
pub fn embeddings_to_gemini(raw: &[u8], model_override: Option<&str>) -> Result<(TranslatedRequest, String, Encoding), String> {
    let req: Map<String, Value> = serde_json::from_slice(raw).map_err(|e| format!("request body is not a JSON object: {e}"))?;
    let request_model = crate::translation::request_model(&req)?;
    let model = model_override.map(str::to_string).or_else(|| request_model.clone()).ok_or("`model` is required")?;
    let model = super::request::path_model(&model)?;
    let texts: Vec<&str> = match req.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().ok_or("`input` as token arrays has no Gemini equivalent: send text"))
            .collect::<Result<_, _>>()?,
        _ => return Err("`input` is required: a string or a list of strings".into()),
    };
    let mut dimensions = None;
    let mut encoding = Encoding::Float;
    for (k, v) in &req {
        match k.as_str() {
            "model" | "input" | "user" => {}
            "dimensions" => dimensions = Some(v.as_u64().ok_or("invalid `dimensions`: expected a positive integer")?),
            "encoding_format" if v == "float" => {}
            "encoding_format" if v == "base64" => encoding = Encoding::Base64,
            "encoding_format" => return Err("invalid `encoding_format`: float or base64".into()),
            other => return Err(format!("`{other}` has no Gemini equivalent")),
        }
    }
    let requests: Vec<Value> = texts
        .iter()
        .map(|t| {
            let mut r = json!({"model": format!("models/{model}"), "content": {"parts": [{"text": t}]}});
            if let Some(d) = dimensions {
                r["outputDimensionality"] = d.into();
            }
            r
        })
        .collect();
    let body = serde_json::to_vec(&json!({"requests": requests})).map_err(|e| e.to_string())?;
    let translated = TranslatedRequest { body, request_model, streaming: false, include_usage: false, params: LlmParams::default(), prompt: None };
    Ok((translated, model, encoding))
}

/// Gemini's `{embeddings: [{values}]}` as OpenAI's embedding list; `None` when it is not one.
pub fn gemini_to_embeddings(v: &Value, model: &str, encoding: Encoding) -> Option<Value> {
    let vector = |values: &Value| -> Option<Value> {
        match encoding {
            Encoding::Float => Some(values.clone()),
            Encoding::Base64 => {
                use base64::Engine;
                let mut bytes = Vec::new();
                for x in values.as_array()? {
                    bytes.extend_from_slice(&(x.as_f64()? as f32).to_le_bytes());
                }
                Some(base64::engine::general_purpose::STANDARD.encode(bytes).into())
            }
        }
    };
    let data: Vec<Value> = v
        .get("embeddings")?
        .as_array()?
        .iter()
        .enumerate()
        .map(|(i, e)| Some(json!({"object": "embedding", "index": i, "embedding": vector(e.get("values")?)?})))
        .collect::<Option<_>>()?;
    // Gemini reports no token usage for embeddings.
    Some(json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": 0, "total_tokens": 0}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_become_one_batch_and_vectors_a_list() {
        let (t, model, encoding) = embeddings_to_gemini(br#"{"model":"text-embedding-004","input":["a","b"],"dimensions":3,"encoding_format":"float"}"#, None).unwrap();
        assert_eq!(encoding, Encoding::Float);
        let body: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(model, "text-embedding-004");
        assert_eq!(body["requests"][1], json!({"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 3}));
        let answer = json!({"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]});
        let out = gemini_to_embeddings(&answer, &model, Encoding::Float).unwrap();
        assert_eq!(out["data"][1], json!({"object": "embedding", "index": 1, "embedding": [0.3, 0.4]}));
        let b64 = gemini_to_embeddings(&json!({"embeddings": [{"values": [1.0, -2.0]}]}), &model, Encoding::Base64).unwrap();
        assert_eq!(b64["data"][0]["embedding"], "AACAPwAAAMA=", "1.0 and -2.0 as little-endian float32");
        for bad in [r#"{"model":"m","input":[[1,2]]}"#, r#"{"model":"m","input":"x","encoding_format":"hex"}"#, r#"{"model":"m"}"#, r#"{"model":"a/b","input":"x"}"#] {
            assert!(embeddings_to_gemini(bad.as_bytes(), None).is_err(), "{bad}");
        }
    }
}
