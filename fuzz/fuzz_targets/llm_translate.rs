//! The LLM translations on untrusted bodies and streams: Messages ↔ Chat Completions requests
//! (what goes upstream is always JSON with the gateway's model), whole answers, and both
//! stream translators fed the input as a sequence of events (never a panic; the output is
//! well-formed SSE).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_llm::anthropic::request::chat_to_messages;
use tollgate_llm::anthropic::response::{error_to_chat, messages_to_chat as messages_answer_to_chat};
use tollgate_llm::anthropic::stream::MessagesToChatStream;
use tollgate_llm::messages::request::messages_to_chat;
use tollgate_llm::messages::response::{chat_to_messages as chat_answer_to_messages, error_to_messages};
use tollgate_llm::gemini::request::chat_to_gemini;
use tollgate_llm::generate::request::generate_to_chat;
use tollgate_llm::generate::response::{chat_to_generate, error_to_generate, ChatToGenerateStream};
use tollgate_llm::gemini::stream::GeminiToChat;
use tollgate_llm::messages::stream::ChatToMessagesStream;
use tollgate_llm::translation::{translate_request, TranslatedAnswer};
use tollgate_llm::responses::request::responses_to_chat;
use tollgate_llm::responses::stream::ChatToResponsesStream;
use tollgate_llm::bedrock::request::chat_to_converse;
use tollgate_llm::bedrock::stream::BedrockToChat;
use tollgate::llm::{AiProvider, LlmExchange, RouteType};

fn well_formed_sse(out: &[u8]) {
    let text = std::str::from_utf8(out).expect("translated events are UTF-8");
    for event in text.split("\n\n").filter(|e| !e.is_empty()) {
        for line in event.lines() {
            assert!(line.starts_with("event: ") || line.starts_with("data: "), "{line:?}");
            if let Some(d) = line.strip_prefix("data: ") {
                assert!(d == "[DONE]" || serde_json::from_str::<serde_json::Value>(d).is_ok(), "{d:?}");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for translated in [messages_to_chat(data, Some("pinned"), true).map(|r| r.body), chat_to_messages(data, Some("pinned"), true).map(|r| r.body)] {
        if let Ok(body) = translated {
            let v: serde_json::Value = serde_json::from_slice(&body).expect("translated body is JSON");
            assert_eq!(v["model"], "pinned");
        }
    }
    if let Ok((t, model)) = chat_to_gemini(data, None, true) {
        serde_json::from_slice::<serde_json::Value>(&t.body).expect("translated body is JSON");
        // The model goes into the upstream path: nothing that could change it.
        assert!(model.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')), "{model:?}");
    }
    if let Ok(t) = generate_to_chat(data, "pinned", true, true) {
        let v: serde_json::Value = serde_json::from_slice(&t.body).expect("translated body is JSON");
        assert_eq!(v["model"], "pinned");
    }
    let _ = error_to_generate(500, data);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = chat_to_generate(&v);
        let _ = chat_answer_to_messages(&v);
        let _ = messages_answer_to_chat(&v);
    }
    // Chained through Chat: Messages on Gemini, generateContent on Anthropic, answered by
    // the input as an event stream and as an error.
    if let Ok(c) = chat_to_converse(data, None, true) {
        serde_json::from_slice::<serde_json::Value>(&c.translated.body).expect("translated body is JSON");
        // The model goes into the path as one segment.
        if let Ok(p) = tollgate_llm::bedrock::path(None, &c.model, true) {
            assert_eq!(p.matches('/').count(), 3, "{p}");
        }
    }
    // The input as an event stream, whole and byte by byte.
    for streaming in [true, false] {
        let mut b = BedrockToChat::new(streaming, true, "m".into());
        let mut out = b.push(data);
        out.extend(b.end());
        if streaming {
            well_formed_sse(&out);
        } else {
            serde_json::from_slice::<serde_json::Value>(&out).expect("a gathered answer is JSON");
        }
    }
    if let Ok((t, _)) = responses_to_chat(data, Some("pinned"), true) {
        let v: serde_json::Value = serde_json::from_slice(&t.body).expect("translated body is JSON");
        assert_eq!(v["model"], "pinned");
    }
    let pairs = [
        (AiProvider::Gemini, RouteType::Messages, "/v1/messages"),
        (AiProvider::Anthropic, RouteType::GenerateContent, "/v1beta/models/m:streamGenerateContent"),
        (AiProvider::Anthropic, RouteType::Responses, "/v1/responses"),
        (AiProvider::Gemini, RouteType::Responses, "/v1/responses"),
        (AiProvider::Bedrock, RouteType::Messages, "/v1/messages"),
    ];
    for (provider, kind, path) in pairs {
        let mut llm = LlmExchange::new("p", "b", kind);
        if let Ok((req, t)) = translate_request(provider, kind, path, data, None, &mut llm, true) {
            serde_json::from_slice::<serde_json::Value>(&req.body).expect("translated body is JSON");
            for error_status in [None, Some(503)] {
                let mut answer = TranslatedAnswer::new(t.clone(), true, error_status);
                let mut body = Some(data.to_vec().into());
                answer.on_body(&mut llm, &mut body, true, true);
            }
        }
    }
    let _ = error_to_messages(500, data);
    let _ = error_to_chat(500, data);
    // Each line is one event's data.
    let mut to_messages = ChatToMessagesStream::default();
    let mut to_chat = MessagesToChatStream::new(true);
    let mut gemini = GeminiToChat::new(true, true);
    let mut gemini_whole = GeminiToChat::new(false, false);
    let mut to_generate = ChatToGenerateStream::default();
    let mut to_responses = ChatToResponsesStream::default();
    let (mut a, mut b, mut c, mut d, mut e) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for line in data.split(|c| *c == b'\n') {
        a.extend(to_messages.chunk(line));
        b.extend(to_chat.event(line));
        c.extend(gemini.event(line));
        d.extend(to_generate.chunk(line));
        e.extend(to_responses.chunk(line));
        assert!(gemini_whole.event(line).is_empty());
    }
    a.extend(to_messages.end());
    b.extend(to_chat.end());
    c.extend(gemini.end());
    d.extend(to_generate.end());
    e.extend(to_responses.end());
    well_formed_sse(&e);
    for event in String::from_utf8(d).expect("UTF-8").split("\r\n\r\n").filter(|e| !e.is_empty()) {
        let body = event.strip_prefix("data: ").expect("a data line");
        serde_json::from_str::<serde_json::Value>(body).expect("a JSON event");
    }
    well_formed_sse(&a);
    well_formed_sse(&b);
    well_formed_sse(&c);
    serde_json::from_slice::<serde_json::Value>(&gemini_whole.end()).expect("a gathered answer is JSON");
});
