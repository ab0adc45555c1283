//! The path normalizer: never panics, and what it returns is normal (starts with `/`, no
//! dot segments, no `//`, no encoded slash) and stable (normalizing again changes nothing).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate::proxy::path::normalize;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    if let Ok(out) = normalize(path) {
        assert!(out.starts_with('/'), "{path:?} -> {out:?}");
        assert!(!out.contains("//"), "{path:?} -> {out:?}");
        assert!(!out.split('/').any(|s| s == "." || s == ".."), "{path:?} -> {out:?}");
        assert!(!out.to_ascii_lowercase().contains("%2f") && !out.contains('\\'), "{path:?} -> {out:?}");
        let again = normalize(&out).expect("a normal path stays valid");
        assert_eq!(again.as_ref(), out.as_ref(), "not idempotent for {path:?}");
    }
});
