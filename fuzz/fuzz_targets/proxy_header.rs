//! The PROXY protocol header reader in front of every connection of a load-balanced gateway:
//! never a panic, a header it strips always lies within what arrived, and more bytes never
//! change a decided answer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate::downstream::proxy_protocol::{parse, Parsed, Versions};

fuzz_target!(|data: &[u8]| {
    let all = Versions { v1: true, v2: true };
    let whole = parse(data, all);
    if let Parsed::Header { len, .. } = whole {
        assert!(len <= data.len());
    }
    for cut in [data.len() / 2, data.len().saturating_sub(1)] {
        match parse(&data[..cut], all) {
            Parsed::Incomplete => {}
            early => assert_eq!(early, whole, "a prefix of {cut} bytes decided differently"),
        }
    }
});
