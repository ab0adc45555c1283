//! Both event-stream parsers (MCP's and the LLM path's splitter): the events do not depend
//! on how the bytes were cut into reads, and nothing panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_llm::usage::{event_data, SseSplitter};
use tollgate_mcp::sse::Parser;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let cut = usize::from(data[0]) % data.len();
    let body = &data[1..];
    let cut = cut.min(body.len());

    let mut whole = Parser::default();
    let all = whole.feed(body).expect("under the event limit");
    let mut split = Parser::default();
    let mut parts = split.feed(&body[..cut]).unwrap();
    parts.extend(split.feed(&body[cut..]).unwrap());
    assert_eq!(all, parts);

    let mut a = SseSplitter::default();
    let mut events: Vec<Vec<u8>> = Vec::new();
    a.each_event(body, true, |e| events.push(e.to_vec()));
    let mut b = SseSplitter::default();
    let mut events_b: Vec<Vec<u8>> = Vec::new();
    b.each_event(&body[..cut], false, |e| events_b.push(e.to_vec()));
    b.each_event(&body[cut..], true, |e| events_b.push(e.to_vec()));
    assert_eq!(events.concat(), events_b.concat());
    assert_eq!(a.pending_len() + b.pending_len(), 0);
    for e in &events {
        let _ = event_data(e);
    }
});
