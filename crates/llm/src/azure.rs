//! The `azure` provider: OpenAI's wire format on Azure's paths. The v1 API and AI Foundry
//! name the API in the path; dated API versions name the deployment (the model) too, so such
//! a path is known only once the model is.

use tollgate_core::llm::RouteType;
use tollgate_core::runtime::AzurePaths;

/// The API segment of an Azure path for a call of `kind`; `None` for calls Azure does not
/// serve on a fixed path (passthrough keeps the client's; token counts are answered locally).
fn api_segment(kind: RouteType) -> Option<&'static str> {
    match kind {
        RouteType::Completions | RouteType::Messages | RouteType::GenerateContent => Some("chat/completions"),
        RouteType::Embeddings => Some("embeddings"),
        RouteType::Responses => Some("responses"),
        RouteType::Models => Some("models"),
        RouteType::AnthropicTokenCount | RouteType::GeminiCountTokens | RouteType::Rerank | RouteType::Passthrough | RouteType::Detect => None,
    }
}

/// What the path of a call is.
#[derive(Debug, PartialEq, Eq)]
pub enum AzurePath {
    /// The client's path stands.
    Keep,
    /// This path and query.
    Set(String),
    /// A deployment path: needs the model, which the request body names.
    NeedsModel,
}

/// The upstream path and query for a call of `kind`, with `model` when it is known.
pub fn path(paths: &AzurePaths, kind: RouteType, model: Option<&str>) -> Result<AzurePath, String> {
    let Some(api) = api_segment(kind) else { return Ok(AzurePath::Keep) };
    Ok(match paths {
        AzurePaths::V1 { preview: false } => AzurePath::Set(format!("/openai/v1/{api}")),
        AzurePaths::V1 { preview: true } => AzurePath::Set(format!("/openai/v1/{api}?api-version=preview")),
        AzurePaths::Foundry { project } => AzurePath::Set(format!("/api/projects/{project}/openai/v1/{api}")),
        AzurePaths::Deployments { api_version } if kind == RouteType::Models => AzurePath::Set(format!("/openai/models?api-version={api_version}")),
        AzurePaths::Deployments { api_version } => match model {
            Some(m) => AzurePath::Set(format!("/openai/deployments/{}/{api}?api-version={api_version}", deployment(m)?)),
            None => AzurePath::NeedsModel,
        },
    })
}

/// A deployment name as it may stand in the path: letters, digits, `.`, `-`, `_` (Azure's
/// own rule is narrower). Anything else could change the path.
pub fn deployment(model: &str) -> Result<&str, String> {
    let ok = !model.is_empty() && model.len() <= 64 && model.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) && model != "." && model != "..";
    if ok {
        Ok(model)
    } else {
        Err(format!("model `{model}` is not an Azure deployment name (letters, digits, `.`, `-`, `_`)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_api_version() {
        let v1 = AzurePaths::V1 { preview: false };
        assert_eq!(path(&v1, RouteType::Completions, None).unwrap(), AzurePath::Set("/openai/v1/chat/completions".into()));
        let preview = AzurePaths::V1 { preview: true };
        assert_eq!(path(&preview, RouteType::Embeddings, None).unwrap(), AzurePath::Set("/openai/v1/embeddings?api-version=preview".into()));
        let dated = AzurePaths::Deployments { api_version: "2024-10-21".into() };
        assert_eq!(path(&dated, RouteType::Completions, None).unwrap(), AzurePath::NeedsModel);
        assert_eq!(
            path(&dated, RouteType::Messages, Some("gpt-4o")).unwrap(),
            AzurePath::Set("/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21".into())
        );
        let foundry = AzurePaths::Foundry { project: "p1".into() };
        assert_eq!(path(&foundry, RouteType::Models, None).unwrap(), AzurePath::Set("/api/projects/p1/openai/v1/models".into()));
        assert_eq!(path(&v1, RouteType::Passthrough, None).unwrap(), AzurePath::Keep);
    }

    #[test]
    fn deployment_names_cannot_change_the_path() {
        let dated = AzurePaths::Deployments { api_version: "2024-10-21".into() };
        for bad in ["../x", "a/b", "a?b", "a#b", "..", "", "a b", "a%2f"] {
            assert!(path(&dated, RouteType::Completions, Some(bad)).is_err(), "{bad}");
        }
    }
}
