//! The ClientHello reader that picks a TLS listener by SNI: never a panic, and a name it
//! returns is always a plain lowercase host name (it goes into logs and route matching).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate::downstream::sni::server_name;

fuzz_target!(|data: &[u8]| {
    if let Some(name) = server_name(data) {
        assert!(!name.is_empty() && name.len() <= 253);
        assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_')));
    }
});
