//! `/config_dump`: the effective config (after `$VAR` expansion) as JSON, with secrets
//! replaced so the dump can be shared.

use serde_json::Value;

const REDACTED: &str = "<redacted>";

/// Keys whose values are secrets wherever they appear.
const SECRET_KEYS: &[&str] = &[
    "key", "value", "apiKey", "secretAccessKey", "sessionToken", "clientSecret", "client_secret", "password",
    "htpasswd", "signingKey", "xdsAuthToken", "caAuthToken",
];

/// Header names whose values are secrets in header maps.
const SECRET_HEADERS: &[&str] = &["authorization", "proxy-authorization", "x-api-key", "api-key", "cookie"];

/// The config text as redacted JSON.
pub fn dump(expanded_yaml: &str) -> Value {
    let mut v: Value = serde_yaml_ng::from_str(expanded_yaml).unwrap_or(Value::Null);
    redact(&mut v);
    v
}

fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                let secret = SECRET_KEYS.contains(&k.as_str()) || SECRET_HEADERS.contains(&k.to_ascii_lowercase().as_str());
                if secret && !child.is_object() {
                    *child = Value::String(REDACTED.into());
                } else if secret {
                    // `key: {file: ...}` / `{value: ...}`: hide every leaf.
                    hide_leaves(child);
                } else {
                    redact(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn hide_leaves(v: &mut Value) {
    match v {
        Value::Object(m) => m.values_mut().for_each(hide_leaves),
        Value::Array(a) => a.iter_mut().for_each(hide_leaves),
        leaf => *leaf = Value::String(REDACTED.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_secrets_are_hidden() {
        let d = dump(include_str!("../../../../conf/seed.yaml"));
        let text = d.to_string();
        assert!(!text.contains("sk-abc") && !text.contains("Bearer abc"), "{text}");
        let route = &d["binds"][0]["listeners"][0]["routes"][0];
        assert_eq!(route["policies"]["backendAuth"]["key"], REDACTED);
        assert_eq!(route["backends"][0]["ai"]["provider"]["openAI"]["model"], "qwen-plus");
    }
}
