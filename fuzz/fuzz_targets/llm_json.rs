//! The LLM path's JSON handling of untrusted bodies: the request rewrite (model override,
//! usage injection, prompt extraction) and the response views (usage, model, choices).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_llm::request::rewrite_completion_request;
use tollgate_llm::usage::{has_usage_object, ChoicesView, ResponseView};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = rewrite_completion_request(data, Some("pinned"), true) {
        // What goes upstream is JSON with the pinned model.
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("rewritten body is JSON");
        assert_eq!(v["model"], "pinned");
        if r.streaming {
            assert_eq!(v["stream_options"]["include_usage"], true);
        }
    }
    let _ = rewrite_completion_request(data, None, false);
    let view = ResponseView::parse(data);
    let _ = view.is_usage_only();
    if let Some(u) = &view.usage {
        let _ = u.to_usage();
    }
    let _ = has_usage_object(data);
    let mut out = Vec::new();
    ChoicesView::append_to(data, &mut out);
});
