//! The `bedrock` provider: Amazon Bedrock's Converse API (`/model/{modelId}/converse`, and
//! `converse-stream` answered in AWS event-stream framing), signed with SigV4. Chat Completions
//! is the pivot: `request.rs` translates a Chat request to Converse, `response.rs` a whole
//! answer back, `stream.rs` the event stream chunk by chunk; other client APIs reach it
//! through Chat. `sign.rs` signs the request once its body is final.

pub mod request;
pub mod response;
pub mod sign;
pub mod stream;

/// The provider's name in telemetry (and how the filter knows a Bedrock call).
pub const PROVIDER_NAME: &str = "aws.bedrock";

/// A model id as one path segment: unreserved characters and `:` as they are, the rest
/// (an inference profile ARN's `/`) percent-encoded.
pub fn model_segment(model: &str) -> Result<String, String> {
    if model.is_empty() || model.len() > 2048 || model.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("model `{model}` is not a Bedrock model id"));
    }
    let mut out = String::with_capacity(model.len());
    for b in model.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out == "." || out == ".." {
        return Err(format!("model `{model}` is not a Bedrock model id"));
    }
    Ok(out)
}

/// The Converse path for `model`.
pub fn path(prefix: Option<&str>, model: &str, streaming: bool) -> Result<String, String> {
    let prefix = prefix.unwrap_or("").trim_end_matches('/');
    let method = if streaming { "converse-stream" } else { "converse" };
    Ok(format!("{prefix}/model/{}/{method}", model_segment(model)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_stay_one_segment() {
        assert_eq!(path(None, "anthropic.claude-3-5-sonnet-20241022-v2:0", true).unwrap(), "/model/anthropic.claude-3-5-sonnet-20241022-v2:0/converse-stream");
        assert_eq!(model_segment("arn:aws:bedrock:us-east-1:1:inference-profile/x").unwrap(), "arn:aws:bedrock:us-east-1:1:inference-profile%2Fx");
        assert_eq!(model_segment("../../x").unwrap(), "..%2F..%2Fx");
        assert!(model_segment("..").is_err() && model_segment("").is_err() && model_segment("a b").is_err());
    }
}
