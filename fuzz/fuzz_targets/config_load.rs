//! The config loader on arbitrary text: a clear error or a config, never a panic; what
//! loads also compiles or fails with a message.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Files named by a fuzzed config must not be touched (`{file:}` reads are relative to a
    // directory that does not exist), nor URLs fetched (`schema: {url:}`).
    if text.contains("file") || text.contains("stdio") || text.contains("url") {
        return;
    }
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| tollgate_app::install().expect("the registry installs"));
    if let Ok(config) = tollgate::config::parse_str(text, "<fuzz>") {
        let _ = tollgate::runtime::compile(&config);
    }
});
