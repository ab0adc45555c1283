//! The request-head check in front of Pingora: never a panic, and the gateway may decide as
//! soon as a prefix decides, because more bytes never change that answer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate::downstream::head::{classify, MAX_HEAD_BYTES};

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_HEAD_BYTES)];
    let whole = classify(data, 100);
    for cut in [1, data.len() / 3, data.len() / 2, data.len().saturating_sub(1)] {
        if cut == 0 || cut >= data.len() {
            continue;
        }
        if let Some(early) = classify(&data[..cut], 100) {
            assert_eq!(Some(early), whole, "a prefix of {} bytes decided differently", cut);
        }
    }
});
