//! The validating top-level scan of JSON request bodies against serde_json: the same verdict on
//! every input, and on success the same members (a repeated key's last value) and a rewrite
//! that serde_json reads back as the same object with the replacement in it. Also: any UTF-8
//! input escaped as a JSON string (the access log's bodies) gives serde_json's bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use tollgate::json_object::JsonObject;

type Serde<'a> = indexmap::IndexMap<String, &'a RawValue>;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let mut escaped = Vec::new();
        tollgate::json_object::write_json_string(&mut escaped, text);
        assert_eq!(escaped, serde_json::to_vec(text).unwrap(), "escaping differs");
    }
    let ours = JsonObject::parse(data);
    let theirs: Result<Serde, _> = serde_json::from_slice(data);
    match (ours, theirs) {
        (Ok(o), Ok(t)) => {
            let mut keys: Vec<&str> = Vec::new();
            for m in o.members() {
                if !keys.contains(&&*m.key) {
                    keys.push(&m.key);
                }
            }
            assert!(keys.iter().copied().eq(t.keys().map(String::as_str)), "keys differ");
            for (k, v) in &t {
                assert_eq!(o.get(k), Some(v.get().as_bytes()), "value of {k:?} differs");
            }
            let out = o.rewrite(&[("model", br#""pinned""#)]);
            let back: Serde = serde_json::from_slice(&out).expect("a rewrite is JSON");
            assert_eq!(back.get("model").map(|v| v.get()), Some(r#""pinned""#));
            assert_eq!(back.len(), t.len() + usize::from(!t.contains_key("model")));
            for (k, v) in t.iter().filter(|(k, _)| *k != "model") {
                assert_eq!(back.get(k).map(|b| b.get()), Some(v.get()), "rewrite changed {k:?}");
            }
        }
        (Err(_), Err(_)) => {}
        (o, t) => panic!("verdicts differ: ours {:?}, serde_json {:?}", o.err(), t.err()),
    }
});
