//! MCP client messages: the JSON-RPC checks the gateway applies at its front, and session
//! ids (sealed tokens) from untrusted headers.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_mcp::jsonrpc;
use tollgate_mcp::token::Codec;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = serde_json::from_slice::<serde_json::Value>(data) {
        match jsonrpc::check_client_message(&msg) {
            Ok(kind) => {
                assert_eq!(msg["jsonrpc"], "2.0");
                if kind == jsonrpc::Kind::Request {
                    assert!(msg["id"].is_string() || msg["id"].is_number());
                    // The id comes back exactly as sent.
                    let answer = jsonrpc::error(&msg["id"], jsonrpc::INTERNAL_ERROR, "x");
                    let text = serde_json::to_string(&answer).unwrap();
                    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(back["id"], msg["id"]);
                }
            }
            Err(_) => {}
        }
        let _ = jsonrpc::method(&msg);
    }
    if let Ok(id) = std::str::from_utf8(data) {
        let codec = Codec::new("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff").unwrap();
        assert!(codec.decode(id).is_none() || id.len() > 40, "a forged id opened");
    }
});
