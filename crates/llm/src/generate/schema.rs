//! Gemini's `Schema` (an OpenAPI 3.0 subset: upper-case `type`, `nullable`,
//! `propertyOrdering`) as the JSON Schema an OpenAI provider takes for tool parameters and
//! structured output. Google's SDKs send `responseSchema` and `parameters` in that form.

use serde_json::{Map, Value};

/// Deepest nesting converted; anything below is passed on as written (bounded recursion on
/// a client's input).
const MAX_DEPTH: usize = 64;

/// The JSON Schema for a Gemini `Schema`.
pub fn to_json_schema(schema: &Value) -> Value {
    convert(schema, 0)
}

fn convert(schema: &Value, depth: usize) -> Value {
    let Some(obj) = schema.as_object().filter(|_| depth < MAX_DEPTH) else { return schema.clone() };
    let nullable = obj.get("nullable").and_then(Value::as_bool) == Some(true);
    let mut out = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "type" => {
                let Some(t) = v.as_str().map(str::to_ascii_lowercase).filter(|t| t != "type_unspecified") else { continue };
                out.insert(k.clone(), if nullable { Value::from(vec![t, "null".to_string()]) } else { t.into() });
            }
            // Only an ordering hint for Gemini's output; no JSON Schema keyword says it.
            "nullable" | "propertyOrdering" | "property_ordering" => {}
            "properties" => {
                let props = v.as_object().map(|p| p.iter().map(|(name, s)| (name.clone(), convert(s, depth + 1))).collect());
                out.insert(k.clone(), props.map(Value::Object).unwrap_or_else(|| v.clone()));
            }
            "items" => {
                out.insert(k.clone(), convert(v, depth + 1));
            }
            "anyOf" | "any_of" => {
                let list = v.as_array().map(|l| l.iter().map(|s| convert(s, depth + 1)).collect::<Vec<_>>());
                out.insert("anyOf".into(), list.map(Value::from).unwrap_or_else(|| v.clone()));
            }
            "maxItems" | "minItems" | "minProperties" | "maxProperties" | "minLength" | "maxLength" => {
                // Google's JSON sends int64 as strings ("5"); JSON Schema wants numbers.
                let n = v.as_str().and_then(|s| s.parse::<u64>().ok()).map(Value::from);
                out.insert(k.clone(), n.unwrap_or_else(|| v.clone()));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openapi_types_become_json_schema() {
        let s = json!({"type": "OBJECT", "propertyOrdering": ["a", "b"], "required": ["a"],
                       "properties": {"a": {"type": "STRING", "enum": ["x", "y"]},
                                      "b": {"type": "ARRAY", "maxItems": "3", "items": {"type": "INTEGER", "nullable": true}},
                                      "c": {"anyOf": [{"type": "NUMBER"}, {"type": "BOOLEAN"}]}}});
        assert_eq!(to_json_schema(&s), json!({"type": "object", "required": ["a"],
            "properties": {"a": {"type": "string", "enum": ["x", "y"]},
                           "b": {"type": "array", "maxItems": 3, "items": {"type": ["integer", "null"]}},
                           "c": {"anyOf": [{"type": "number"}, {"type": "boolean"}]}}}));
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut s = json!({"type": "STRING"});
        for _ in 0..200 {
            s = json!({"type": "ARRAY", "items": s});
        }
        let out = to_json_schema(&s);
        assert_eq!(out["type"], "array");
    }
}
