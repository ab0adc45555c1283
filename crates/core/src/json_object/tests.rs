//! The scanner against serde_json, member by member, and the rewrites.

use super::*;

type Serde<'a> = indexmap::IndexMap<String, &'a serde_json::value::RawValue>;

/// The same verdict as serde_json, and on success the same members (last value wins).
fn same_as_serde(text: &str) {
    let ours = JsonObject::parse(text.as_bytes());
    let theirs: Result<Serde, _> = serde_json::from_str(text);
    match (&ours, &theirs) {
        (Ok(o), Ok(t)) => {
            let keys: Vec<&str> = t.keys().map(String::as_str).collect();
            let mut ours_keys: Vec<&str> = Vec::new();
            for m in o.members() {
                if !ours_keys.contains(&&*m.key) {
                    ours_keys.push(&m.key);
                }
            }
            assert_eq!(ours_keys, keys, "{text}");
            for (k, v) in t {
                assert_eq!(o.get(k), Some(v.get().as_bytes()), "{text}");
            }
        }
        (Err(_), Err(_)) => {}
        _ => panic!("{text:?}: ours {:?}, serde_json {:?}", ours.as_ref().map(|_| ()), theirs.as_ref().map(|_| ())),
    }
}

#[test]
fn accepts_and_refuses_what_serde_json_does() {
    let cases = [
        r#"{}"#, r#" { } "#, r#"{"a":1}"#, r#"{"a":[1,2,{"b":[true,false,null]}],"c":"d"}"#,
        r#"{"a":-0.5e+10,"b":0,"c":1E3,"d":-1}"#, r#"{"a":01}"#, r#"{"a":1.}"#, r#"{"a":.5}"#, r#"{"a":1e}"#,
        r#"{"a":-}"#, r#"{"a":+1}"#, r#"{"a":"\u00e9\n\"\\\/\b\f\r\t"}"#, r#"{"a":"\x"}"#, r#"{"a":"\u12G4"}"#,
        r#"{"a":"\ud800"}"#, r#"{"\ud800":1}"#, r#"{"\u0061":1,"a":2}"#, r#"{"a":1,"b":2,"a":3}"#,
        r#"{"a":1,}"#, r#"{,"a":1}"#, r#"{"a" 1}"#, r#"{"a":1 "b":2}"#, r#"{"a":[1,]}"#, r#"{"a":[,1]}"#,
        r#"{"a":{"b":1,}}"#, r#"{"a":{"b"}}"#, r#"{"a":{1:2}}"#, r#"{"a":tru}"#, r#"{"a":nul}"#, r#"{"a":truex}"#,
        r#"{"a":1}x"#, r#"{"a":1}{}"#, r#"[1]"#, r#""a""#, r#"1"#, r#""#, r#"{"#, r#"{"a""#, r#"{"a":"#,
        r#"{"a":"b"#, r#"{"a":[1"#, r#"{"a":{"b":1"#, r#"{"a":"é日本"}"#, "{\"a\":\"\u{1}\"}", "{\"a\":\"\t\"}",
        "{\"a\":\"\u{7f}\"}", "{\"a\"\n:\r\t1\n}", r#"{"a":[[[[[[[]]]]]]]}"#, r#"{"a":[[[[[[[]]]]]]}"#,
        r#"{"a":{"b":{"c":{}}}}"#, r#"{"a":{"b":{"c":{}}}"#, r#"{"a":[{}]}"#, r#"{"a":[{"b":[]},{"c":{}}]}"#,
        r#"{"a":[}"#, r#"{"a":{]}"#, r#"{"":""}"#,
    ];
    for case in cases {
        same_as_serde(case);
    }
    // Invalid UTF-8 in a string and in a key.
    for bytes in [&b"{\"a\":\"\xff\"}"[..], b"{\"\xc3\":1}", b"{\"a\":\"\xe6\x97\"}"] {
        assert!(JsonObject::parse(bytes).is_err());
        assert!(serde_json::from_slice::<Serde>(bytes).is_err());
    }
}

#[test]
fn long_strings_are_checked_on_both_sides_of_every_step() {
    // A bad byte at each offset of a run longer than one 64-byte step is found.
    for len in [63, 64, 65, 130] {
        for at in 0..len {
            let mut s = vec![b'x'; len];
            s[at] = 0x01;
            let text = [&b"{\"a\":\""[..], &s, b"\"}"].concat();
            let err = JsonObject::parse(&text).unwrap_err();
            assert_eq!(err.column, 7 + at, "len {len} at {at}");
            s[at] = b'x';
            let ok = [&b"{\"a\":\""[..], &s, b"\"}"].concat();
            assert!(JsonObject::parse(&ok).is_ok());
        }
    }
}

#[test]
fn errors_say_where() {
    let err = JsonObject::parse(b"{\"a\":1,\n  \"b\":x}").unwrap_err();
    assert_eq!((err.what, err.line, err.column), ("expected value", 2, 7));
    assert_eq!(JsonObject::parse(b"[]").unwrap_err().to_string(), "expected a JSON object at line 1 column 1");
}

#[test]
fn rewrite_replaces_in_place_adds_at_the_end_and_collapses_repeats() {
    let o = JsonObject::parse(br#" { "model" : "a", "messages": [ 1 ], "stream": true } "#).unwrap();
    let out = o.rewrite(&[("model", br#""b""#), ("stream_options", br#"{"include_usage":true}"#)]);
    assert_eq!(out, br#"{"model":"b","messages":[ 1 ],"stream":true,"stream_options":{"include_usage":true}}"#);
    let o = JsonObject::parse(br#"{"a":1,"b":2,"a":3}"#).unwrap();
    assert_eq!(o.rewrite(&[]), br#"{"a":3,"b":2}"#);
    assert_eq!(o.rewrite(&[("a", b"9")]), br#"{"a":9,"b":2}"#);
    assert_eq!(o.get("a"), Some(&b"3"[..]));
    let o = JsonObject::parse(b"{}").unwrap();
    assert_eq!(o.rewrite(&[("model", br#""m""#)]), br#"{"model":"m"}"#);
    // An escaped key is the same key.
    let o = JsonObject::parse(br#"{"mod\u0065l":"a"}"#).unwrap();
    assert_eq!(o.get("model"), Some(&br#""a""#[..]));
    assert_eq!(o.rewrite(&[("model", br#""b""#)]), br#"{"mod\u0065l":"b"}"#);
}

#[test]
fn rewrite_parts_lend_the_long_stretches_and_read_back_as_the_rewrite() {
    let prompt = "p".repeat(1000);
    let text = format!(r#" {{"model": "a", "messages": [{{"content": "{prompt}"}}], "n": 1}} "#);
    let body = Bytes::from(text.clone());
    let o = JsonObject::parse(&body).unwrap();
    let replace: [(&str, &[u8]); 2] = [("model", br#""longer-name""#), ("stream_options", br#"{"include_usage":true}"#)];
    let parts = o.rewrite_parts(&body, &replace, 100).unwrap();
    // Three pieces: the head with the new model, the prompt lent, the tail with the addition.
    assert_eq!(parts.len(), 3);
    let lent = body.as_ptr_range();
    assert!(lent.contains(&parts[1].as_ptr()) && parts[1].len() > 1000);
    assert!(!lent.contains(&parts[0].as_ptr()) && !lent.contains(&parts[2].as_ptr()));
    let joined: serde_json::Value = serde_json::from_slice(&parts.concat()).unwrap();
    let rewritten: serde_json::Value = serde_json::from_slice(&o.rewrite(&replace)).unwrap();
    assert_eq!(joined, rewritten);
    assert_eq!(joined["model"], "longer-name");
    assert_eq!(joined["stream_options"]["include_usage"], true);
    // Nothing long enough to lend: one copied piece; a repeated key: no pieces.
    assert_eq!(o.rewrite_parts(&body, &replace, 10_000).unwrap().len(), 1);
    let dup = Bytes::from_static(br#"{"a":1,"a":2}"#);
    assert!(JsonObject::parse(&dup).unwrap().rewrite_parts(&dup, &[], 1).is_none());
    // Equal bytes held elsewhere are not the body the object was read from: no pieces.
    assert!(o.rewrite_parts(&Bytes::from(text.clone()), &replace, 100).is_none());
    // An empty object gets the added member without a comma.
    let empty = Bytes::from_static(b"{ }");
    let parts = JsonObject::parse(&empty).unwrap().rewrite_parts(&empty, &[("model", br#""m""#)], 1).unwrap();
    assert_eq!(parts.concat(), br#"{ "model":"m"}"#);
}

#[test]
fn many_members_with_a_repeat_are_found() {
    let mut text = String::from("{");
    for i in 0..40 {
        text.push_str(&format!("\"k{i}\":{i},"));
    }
    text.push_str("\"k3\":\"last\"}");
    let o = JsonObject::parse(text.as_bytes()).unwrap();
    assert!(o.has_repeated_keys());
    let out: serde_json::Value = serde_json::from_slice(&o.rewrite(&[])).unwrap();
    assert_eq!(out["k3"], "last");
    assert_eq!(out.as_object().unwrap().len(), 40);
}

#[test]
fn deep_nesting_costs_no_stack() {
    let depth = 200_000;
    let text = format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
    assert!(JsonObject::parse(text.as_bytes()).is_ok());
}
