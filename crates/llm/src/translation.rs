//! Which API pair a call is (client API × provider API) and the translation it needs, for
//! the request body and for the answer: whole, streamed event by event, or an error.

use bytes::Bytes;
use serde_json::Value;

use tollgate_core::llm::{AiProvider, LlmExchange, RouteType};
use tollgate_core::json_pointer::Pointer as _;

use crate::anthropic::stream::MessagesToChatStream;
use crate::messages::stream::ChatToMessagesStream;
use crate::observe::{observe_generate, observe_native};
use crate::request::RewrittenRequest;
use crate::usage::{event_data, has_usage_object, ChoicesView, ResponseView, SseSplitter};

/// Upper bound on an answer (or error) held whole for translation or usage parsing.
pub const MAX_RESPONSE_COPY: usize = 8 * 1024 * 1024;

/// How the provider's answer goes back to the client.
#[derive(Debug, Clone, Default)]
pub enum Translation {
    /// Same API both sides (OpenAI Chat): handled by the completions path.
    #[default]
    None,
    /// A Messages client, an OpenAI provider.
    MessagesOverChat(ChatToMessagesStream),
    /// A Chat client, an Anthropic provider.
    ChatOverMessages(MessagesToChatStream),
    /// A Messages client, an Anthropic provider: bytes pass untouched, usage is read.
    NativeMessages(MessagesToChatStream),
    /// A Gemini generateContent client, an OpenAI provider.
    GenerateOverChat(crate::generate::response::ChatToGenerateStream),
    /// A Chat client, a Gemini provider (always streamed upstream).
    ChatOverGemini(Box<crate::gemini::stream::GeminiToChat>),
    /// A generateContent client, a Gemini provider: bytes pass untouched, usage is read.
    NativeGenerate,
    /// A Responses client, a provider that speaks Responses: bytes pass untouched, usage is read.
    NativeResponses,
    /// A Chat client, a Bedrock provider (Converse, or ConverseStream's event stream).
    ChatOverBedrock(Box<crate::bedrock::stream::BedrockToChat>),
    /// A Responses client, a Chat answer (the outer half of a chain).
    ResponsesOverChat(Box<crate::responses::stream::ChatToResponsesStream>),
    /// OpenAI embeddings on Gemini's `batchEmbedContents`, for the model named, in the
    /// encoding the client asked for.
    EmbeddingsOverGemini(String, crate::gemini::embeddings::Encoding),
    /// Two translations through Chat Completions: the provider's answer becomes a Chat answer
    /// (`inner`), which becomes the client's (`outer`). A Messages client on a Gemini provider,
    /// a generateContent client on an Anthropic one.
    Chained(Box<Chain>),
}

/// The two halves of [`Translation::Chained`].
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// Provider → Chat.
    pub inner: TranslatedAnswer,
    /// Chat → client.
    pub outer: TranslatedAnswer,
}

impl Translation {
    /// The model a Gemini provider's path names, when the provider is Gemini.
    pub fn gemini_path_model(&self) -> Option<&str> {
        match self {
            Translation::ChatOverGemini(g) => Some(&g.path_model),
            Translation::Chained(c) => c.inner.translation.gemini_path_model(),
            _ => None,
        }
    }

    /// The model and streaming of a Bedrock call (its path names both).
    pub fn bedrock_route(&self) -> Option<(&str, bool)> {
        match self {
            Translation::ChatOverBedrock(b) => Some((&b.model, b.streaming)),
            Translation::Chained(c) => c.inner.translation.bedrock_route(),
            _ => None,
        }
    }

    /// Whether what this translation gives the client is an event stream, given whether the
    /// provider's answer is one (Gemini always streams; Bedrock streams in its own framing).
    pub fn outputs_sse(&self, upstream_sse: bool) -> bool {
        match self {
            Translation::ChatOverGemini(g) => g.client_streams,
            Translation::ChatOverBedrock(b) => b.streaming,
            Translation::Chained(c) => c.outer.translation.outputs_sse(c.inner.translation.outputs_sse(upstream_sse)),
            _ => upstream_sse,
        }
    }

    /// Whether the client speaks another API than the provider's, so its own API's headers
    /// (`x-api-key`, `x-goog-api-key`, `anthropic-*`) are not the provider's.
    pub fn client_api_differs(&self) -> bool {
        !matches!(self, Translation::None | Translation::NativeMessages(_) | Translation::NativeGenerate | Translation::NativeResponses)
    }

    /// Whether the client gets one JSON document though the provider streams (Gemini is
    /// always asked for a stream).
    pub fn gathers_stream(&self) -> bool {
        match self {
            Translation::ChatOverGemini(g) => !g.client_streams,
            Translation::Chained(c) => c.inner.translation.gathers_stream(),
            _ => false,
        }
    }
}

/// A request body translated for the provider, and what the gateway records of it.
#[derive(Debug)]
pub struct TranslatedRequest {
    /// Bytes to send upstream.
    pub body: Vec<u8>,
    /// `model` as the client sent it.
    pub request_model: Option<String>,
    /// `stream: true`.
    pub streaming: bool,
    /// A Chat client asked for the usage chunk at the end of its stream.
    pub include_usage: bool,
    /// Sampling parameters.
    pub params: tollgate_core::llm::LlmParams,
    /// The prompt messages, when asked for.
    pub prompt: Option<Vec<tollgate_core::llm::PromptMessage>>,
}

/// The `model` a client's request names (absent or null: none; anything but a string: a 400).
pub fn request_model(req: &serde_json::Map<String, Value>) -> Result<Option<String>, String> {
    match req.get("model") {
        Some(Value::String(m)) => Ok(Some(m.clone())),
        None | Some(Value::Null) => Ok(None),
        Some(_) => Err("invalid `model`: expected a string".into()),
    }
}

/// Role and text of each Chat-shaped message, for telemetry (text parts joined).
pub fn chat_prompt(messages: &[Value]) -> Vec<tollgate_core::llm::PromptMessage> {
    messages
        .iter()
        .map(|m| tollgate_core::llm::PromptMessage {
            role: m.get("role").and_then(Value::as_str).unwrap_or("").to_string(),
            content: match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n"),
                _ => String::new(),
            },
        })
        .collect()
}

/// What an upstream error body says: its type (when it names one) and its message (the
/// JSON's `error.message` or `message`, else the text itself, cut to a sane length).
pub fn upstream_error(status: u16, body: &[u8]) -> (Option<String>, String) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    // OpenAI and Anthropic name the error's `type`, Google its `status`.
    let kind = parsed.as_ref().and_then(|v| v.at("/error/type").or_else(|| v.at("/error/status"))).and_then(Value::as_str).map(str::to_string);
    let message = parsed
        .as_ref()
        .and_then(|v| v.at("/error/message").or_else(|| v.get("message")).and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                format!("the upstream answered HTTP {status}")
            } else {
                text.chars().take(2048).collect()
            }
        });
    (kind, message)
}

/// Whether a call is translated (the client's API is not the provider's).
pub fn is_translated(provider: AiProvider, kind: RouteType) -> bool {
    matches!(
        (provider, kind),
        (AiProvider::OpenAi, RouteType::Messages | RouteType::GenerateContent)
            | (AiProvider::Anthropic, RouteType::Completions | RouteType::GenerateContent | RouteType::Responses)
            | (AiProvider::Gemini, RouteType::Completions | RouteType::Messages | RouteType::Responses | RouteType::Embeddings)
            | (AiProvider::Bedrock, RouteType::Completions | RouteType::Messages | RouteType::Responses | RouteType::GenerateContent)
    )
}

/// Client APIs translated to Chat Completions and on to a provider that does not speak Chat.
fn is_chained(provider: AiProvider, kind: RouteType) -> bool {
    matches!(
        (provider, kind),
        (AiProvider::Anthropic, RouteType::GenerateContent | RouteType::Responses)
            | (AiProvider::Gemini, RouteType::Messages | RouteType::Responses)
            | (AiProvider::Bedrock, RouteType::Messages | RouteType::Responses | RouteType::GenerateContent)
    )
}

/// The request body for the provider, and how its answer is to be handled.
#[allow(clippy::too_many_arguments)]
pub fn translate_request(
    provider: AiProvider,
    kind: RouteType,
    client_path: &str,
    raw: &[u8],
    model: Option<&str>,
    llm: &mut LlmExchange,
    want_prompt: bool,
) -> Result<(RewrittenRequest, Translation), String> {
    let plain = |body: Vec<u8>, streaming: bool| RewrittenRequest {
        body,
        request_model: None,
        streaming,
        injected_usage: false,
        params: Default::default(),
        prompt: None,
    };
    if is_chained(provider, kind) {
        // The client's API → Chat (the model set here) → the provider's API.
        let (chat, outer) = if kind == RouteType::Responses {
            let (t, echo) = crate::responses::request::responses_to_chat(raw, model, want_prompt)?;
            (llm.request_model, llm.streaming, llm.params, llm.prompt) = (t.request_model, t.streaming, t.params, t.prompt);
            let outer = Translation::ResponsesOverChat(Box::new(crate::responses::stream::ChatToResponsesStream::new(echo)));
            (plain(t.body, t.streaming), outer)
        } else {
            translate_request(AiProvider::OpenAi, kind, client_path, raw, model, llm, want_prompt)?
        };
        let mut scratch = LlmExchange::new(llm.provider, &llm.backend, RouteType::Completions);
        let (body, inner) = translate_request(provider, RouteType::Completions, client_path, &chat.body, None, &mut scratch, false)?;
        let chain = Chain {
            inner: TranslatedAnswer { translation: inner, ..Default::default() },
            outer: TranslatedAnswer { translation: outer, ..Default::default() },
        };
        return Ok((plain(body.body, llm.streaming), Translation::Chained(Box::new(chain))));
    }
    match (provider, kind) {
        (AiProvider::OpenAi, RouteType::Messages) => {
            let t = crate::messages::request::messages_to_chat(raw, model, want_prompt)?;
            (llm.request_model, llm.streaming, llm.params, llm.prompt) = (t.request_model, t.streaming, t.params, t.prompt);
            Ok((plain(t.body, t.streaming), Translation::MessagesOverChat(Default::default())))
        }
        (AiProvider::Anthropic, RouteType::Completions) => {
            let t = crate::anthropic::request::chat_to_messages(raw, model, want_prompt)?;
            (llm.request_model, llm.streaming, llm.params, llm.prompt) = (t.request_model, t.streaming, t.params, t.prompt);
            Ok((plain(t.body, t.streaming), Translation::ChatOverMessages(MessagesToChatStream::new(t.include_usage))))
        }
        (AiProvider::OpenAi, RouteType::GenerateContent) => {
            let (path_model, streaming) = crate::generate::request::model_in_path(client_path).ok_or("the path names no `models/{model}:generateContent`")?;
            let t = crate::generate::request::generate_to_chat(raw, model.unwrap_or(&path_model), streaming, want_prompt)?;
            (llm.streaming, llm.params, llm.prompt) = (t.streaming, t.params, t.prompt);
            llm.request_model = Some(path_model);
            Ok((plain(t.body, t.streaming), Translation::GenerateOverChat(Default::default())))
        }
        (AiProvider::Gemini, RouteType::Embeddings) => {
            let (t, model, encoding) = crate::gemini::embeddings::embeddings_to_gemini(raw, model)?;
            llm.request_model = t.request_model;
            Ok((plain(t.body, false), Translation::EmbeddingsOverGemini(model, encoding)))
        }
        (AiProvider::Gemini, RouteType::Completions) => {
            let (t, path_model) = crate::gemini::request::chat_to_gemini(raw, model, want_prompt)?;
            (llm.request_model, llm.streaming, llm.params, llm.prompt) = (t.request_model, t.streaming, t.params, t.prompt);
            let mut g = crate::gemini::stream::GeminiToChat::new(t.streaming, t.include_usage);
            g.path_model = path_model;
            Ok((plain(t.body, t.streaming), Translation::ChatOverGemini(Box::new(g))))
        }
        (AiProvider::Bedrock, RouteType::Completions) => {
            let c = crate::bedrock::request::chat_to_converse(raw, model, want_prompt)?;
            let t = c.translated;
            (llm.request_model, llm.streaming, llm.params, llm.prompt) = (t.request_model, t.streaming, t.params, t.prompt);
            let b = crate::bedrock::stream::BedrockToChat::new(t.streaming, t.include_usage, c.model);
            Ok((plain(t.body, t.streaming), Translation::ChatOverBedrock(Box::new(b))))
        }
        (AiProvider::OpenAi, RouteType::Responses) => {
            let t = crate::responses::native::rewrite_responses_request(raw, model)?;
            (llm.request_model, llm.streaming, llm.params) = (t.request_model, t.streaming, t.params);
            Ok((plain(t.body, t.streaming), Translation::NativeResponses))
        }
        (AiProvider::Gemini, RouteType::GenerateContent) => {
            // The model and streaming are in the path (set by the caller); the body is Gemini's.
            let (path_model, streaming) = crate::generate::request::model_in_path(client_path).ok_or("the path names no `models/{model}:generateContent`")?;
            if !raw.trim_ascii_start().starts_with(b"{") {
                return Err("request body is not a JSON object".into());
            }
            (llm.request_model, llm.streaming) = (Some(path_model), streaming);
            Ok((plain(raw.to_vec(), streaming), Translation::NativeGenerate))
        }
        (AiProvider::Anthropic, RouteType::AnthropicTokenCount) => {
            let t = crate::anthropic::native::rewrite_messages_request(raw, model)?;
            llm.request_model = t.request_model;
            Ok((plain(t.body, false), Translation::None))
        }
        (AiProvider::Anthropic, RouteType::Messages) => {
            let t = crate::anthropic::native::rewrite_messages_request(raw, model)?;
            (llm.request_model, llm.streaming, llm.params) = (t.request_model, t.streaming, t.params);
            Ok((plain(t.body, t.streaming), Translation::NativeMessages(MessagesToChatStream::new(false))))
        }
        _ => {
            // Chat completions and embeddings: the model replaced, the rest as written.
            let want_prompt = want_prompt && kind == RouteType::Completions;
            let mut rewritten = crate::request::rewrite_completion_request(raw, model, want_prompt)?;
            llm.request_model = rewritten.request_model.take();
            llm.streaming = rewritten.streaming;
            llm.params = std::mem::take(&mut rewritten.params);
            llm.prompt = rewritten.prompt.take();
            Ok((rewritten, Translation::None))
        }
    }
}

/// A translated answer in flight.
#[derive(Debug, Clone, Default)]
pub struct TranslatedAnswer {
    /// The translation.
    pub translation: Translation,
    /// The provider answered with an error status: its body becomes the client API's error.
    pub error_status: Option<u16>,
    /// The answer is an event stream.
    pub sse: bool,
    held: Vec<u8>,
    splitter: SseSplitter,
}

impl TranslatedAnswer {
    /// A fresh answer for `translation`; `sse` and `error_status` as the provider answered.
    pub fn new(translation: Translation, sse: bool, error_status: Option<u16>) -> Self {
        TranslatedAnswer { translation, sse, error_status, ..Default::default() }
    }

    /// Whether the answer's bytes are rewritten (so its length is not known ahead).
    pub fn rewrites(&self) -> bool {
        self.translation.client_api_differs()
    }

    /// One chunk of the provider's answer; replaces it with what the client gets.
    pub fn on_body(&mut self, llm: &mut LlmExchange, body: &mut Option<Bytes>, end: bool, want_completion: bool) {
        if let Translation::Chained(c) = &mut self.translation {
            c.inner.sse = self.sse;
            c.inner.error_status = self.error_status;
            c.inner.on_body(llm, body, end, false);
            // What the inner half made: Chat events when the client streams, else one document.
            c.outer.sse = self.error_status.is_none() && c.inner.translation.outputs_sse(self.sse);
            c.outer.error_status = self.error_status;
            c.outer.on_body(llm, body, end, want_completion);
            return;
        }
        let incoming = body.take().unwrap_or_default();
        if matches!(self.translation, Translation::NativeGenerate | Translation::NativeResponses) {
            if self.error_status.is_none() {
                let native_responses = matches!(self.translation, Translation::NativeResponses);
                observe_generate(&mut self.splitter, &mut self.held, self.sse, llm, &incoming, end, native_responses);
            }
            *body = Some(incoming);
            return;
        }
        if let (Translation::ChatOverBedrock(b), None) = (&mut self.translation, self.error_status) {
            llm.response_model.get_or_insert_with(|| b.model.clone());
            if b.streaming {
                let mut out = b.push(&incoming);
                if end {
                    out.extend(b.end());
                }
                if let Some(u) = b.chat_usage() {
                    record_usage(llm, &u, None);
                }
                if want_completion {
                    for event in out.split(|c| *c == b'\n').filter_map(|l| l.strip_prefix(b"data: ")) {
                        ChoicesView::append_to(event, llm.completion.get_or_insert_with(Vec::new));
                    }
                }
                *body = Some(Bytes::from(out));
                return;
            }
        }
        if let Translation::NativeMessages(observer) = &mut self.translation {
            // Untouched bytes; usage read on the way.
            if self.error_status.is_none() {
                observe_native(observer, &mut self.splitter, &mut self.held, self.sse, llm, &incoming, end);
            }
            *body = Some(incoming);
            return;
        }
        if self.error_status.is_some() || !self.sse {
            if self.held.len() + incoming.len() <= MAX_RESPONSE_COPY {
                self.held.extend_from_slice(&incoming);
            }
            *body = if end { Some(Bytes::from(self.whole(llm, want_completion))) } else { None };
            return;
        }
        let mut out = Vec::new();
        for event in complete_events(&mut self.splitter, &incoming, end) {
            let Some(data) = event_data(&event) else { continue };
            match &mut self.translation {
                Translation::MessagesOverChat(s) => {
                    record_chat(llm, &data, want_completion);
                    out.extend(s.chunk(&data));
                }
                Translation::GenerateOverChat(s) => {
                    record_chat(llm, &data, want_completion);
                    out.extend(s.chunk(&data));
                }
                Translation::ResponsesOverChat(s) => {
                    record_chat(llm, &data, want_completion);
                    out.extend(s.chunk(&data));
                }
                Translation::ChatOverGemini(g) => {
                    out.extend(g.event(&data));
                    if let Some(u) = g.chat_usage() {
                        record_usage(llm, &u, None);
                    }
                }
                Translation::ChatOverMessages(s) => {
                    out.extend(s.event(&data));
                    record_usage(llm, &s.chat_usage(), None);
                    if want_completion {
                        if let Some(t) = serde_json::from_slice::<Value>(&data).ok().and_then(|v| v.at("/delta/text").and_then(Value::as_str).map(str::to_string)) {
                            push_completion(llm, &t);
                        }
                    }
                    if llm.response_model.is_none() {
                        if let Some(m) = serde_json::from_slice::<Value>(&data).ok().and_then(|v| v.at("/message/model").and_then(Value::as_str).map(str::to_string)) {
                            llm.response_model = Some(m);
                        }
                    }
                }
                _ => {}
            }
        }
        if end {
            match &mut self.translation {
                Translation::MessagesOverChat(s) => out.extend(s.end()),
                Translation::ChatOverMessages(s) => out.extend(s.end()),
                Translation::GenerateOverChat(s) => out.extend(s.end()),
                Translation::ResponsesOverChat(s) => out.extend(s.end()),
                Translation::ChatOverGemini(g) => {
                    let tail = g.end();
                    if want_completion {
                        if let Ok(v) = serde_json::from_slice::<Value>(&tail) {
                            ChoicesView::append_to(v.to_string().as_bytes(), llm.completion.get_or_insert_with(Vec::new));
                        }
                    }
                    out.extend(tail);
                }
                _ => {}
            }
        }
        *body = Some(Bytes::from(out));
    }

    /// The held whole answer (or error), translated.
    fn whole(&mut self, llm: &mut LlmExchange, want_completion: bool) -> Vec<u8> {
        let whole = std::mem::take(&mut self.held);
        if let (Translation::ChatOverGemini(g), None) = (&mut self.translation, self.error_status) {
            // Gemini answered one document rather than a stream: the same translation.
            let mut out = g.event(&whole);
            out.extend(g.end());
            if let Some(u) = g.chat_usage() {
                record_usage(llm, &u, None);
            }
            return out;
        }
        let out = match (&self.translation, self.error_status) {
            (Translation::MessagesOverChat(_), Some(status)) => crate::messages::response::error_to_messages(status, &whole),
            (Translation::GenerateOverChat(_), Some(status)) => crate::generate::response::error_to_generate(status, &whole),
            // Chat's errors are in OpenAI's shape already, as Responses clients want them.
            (Translation::ResponsesOverChat(_), Some(_)) => return whole,
            (Translation::ResponsesOverChat(s), None) => {
                record_chat(llm, &whole, want_completion);
                let chat: Value = serde_json::from_slice(&whole).unwrap_or_default();
                crate::responses::response::chat_to_response(&chat, &s.echo)
                    .unwrap_or_else(|| serde_json::json!({"error": {"message": "the provider's answer is not a chat completion", "type": "upstream_error"}}))
            }
            (Translation::GenerateOverChat(_), None) => {
                record_chat(llm, &whole, want_completion);
                let chat: Value = serde_json::from_slice(&whole).unwrap_or_default();
                crate::generate::response::chat_to_generate(&chat)
                    .unwrap_or_else(|| crate::generate::response::error_to_generate(502, b"the provider's answer is not a chat completion"))
            }
            (Translation::ChatOverMessages(_) | Translation::ChatOverGemini(_) | Translation::ChatOverBedrock(_) | Translation::EmbeddingsOverGemini(..), Some(status)) => crate::anthropic::response::error_to_chat(status, &whole),
            (Translation::EmbeddingsOverGemini(model, encoding), None) => {
                llm.response_model.get_or_insert_with(|| model.clone());
                let v: Value = serde_json::from_slice(&whole).unwrap_or_default();
                crate::gemini::embeddings::gemini_to_embeddings(&v, model, *encoding).unwrap_or_else(|| serde_json::json!({"error": {"message": "the provider's answer is not a batchEmbedContents response", "type": "upstream_error"}}))
            }
            (Translation::ChatOverBedrock(b), None) => {
                let v: Value = serde_json::from_slice(&whole).unwrap_or_default();
                match crate::bedrock::response::converse_to_chat(&v, &b.model) {
                    Some(chat) => {
                        record_chat(llm, chat.to_string().as_bytes(), want_completion);
                        chat
                    }
                    None => crate::anthropic::response::error_to_chat(502, b"the provider's answer is not a Converse response"),
                }
            }
            (Translation::MessagesOverChat(_), None) => {
                record_chat(llm, &whole, want_completion);
                let chat: Value = serde_json::from_slice(&whole).unwrap_or_default();
                crate::messages::response::chat_to_messages(&chat)
                    .unwrap_or_else(|| crate::messages::response::error_to_messages(502, b"the provider's answer is not a chat completion"))
            }
            (Translation::ChatOverMessages(_), None) => {
                let m: Value = serde_json::from_slice(&whole).unwrap_or_default();
                match crate::anthropic::response::messages_to_chat(&m) {
                    Some(chat) => {
                        record_chat(llm, chat.to_string().as_bytes(), want_completion);
                        chat
                    }
                    None => crate::anthropic::response::error_to_chat(502, b"the provider's answer is not a Messages response"),
                }
            }
            _ => return whole,
        };
        serde_json::to_vec(&out).unwrap_or_default()
    }
}

/// The events complete with `incoming` (and, at the end, whatever is left), copied out.
pub(crate) fn complete_events(splitter: &mut SseSplitter, incoming: &[u8], end: bool) -> Vec<Vec<u8>> {
    let mut events = Vec::new();
    splitter.each_event(incoming, end, |e| events.push(e.to_vec()));
    events
}

/// Records model, usage (and the text, when telemetry wants it) from a Chat document.
fn record_chat(llm: &mut LlmExchange, data: &[u8], want_completion: bool) {
    if data == b"[DONE]" {
        return;
    }
    if llm.response_model.is_none() || has_usage_object(data) {
        let view = ResponseView::parse(data);
        if let Some(m) = &view.model {
            llm.response_model.get_or_insert_with(|| m.clone());
        }
        if let Some(u) = &view.usage {
            llm.usage = Some(u.to_usage());
        }
    }
    if want_completion {
        ChoicesView::append_to(data, llm.completion.get_or_insert_with(Vec::new));
    }
}

/// Records Chat-shaped usage (and the model) on the exchange.
pub(crate) fn record_usage(llm: &mut LlmExchange, usage: &Value, model: Option<&str>) {
    let doc = serde_json::json!({"model": model, "usage": usage});
    let view = ResponseView::parse(doc.to_string().as_bytes());
    if let Some(u) = &view.usage {
        llm.usage = Some(u.to_usage());
    }
}

fn push_completion(llm: &mut LlmExchange, text: &str) {
    let out = llm.completion.get_or_insert_with(Vec::new);
    if out.is_empty() {
        out.push(String::new());
    }
    out[0].push_str(text);
}
