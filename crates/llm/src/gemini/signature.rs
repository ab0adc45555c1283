//! Gemini's thought signatures through APIs that have no field for them. Gemini (2.5 with
//! thinking, and 3, which refuses a function call sent back without its signature) returns a
//! `thoughtSignature` beside each function call and wants it back with the call in the next
//! turn. Chat, Messages and Responses clients echo only the tool call's id, so the id carries
//! it: `{id}__thought_sig__{signature, base64url}`. Every character stays in
//! `[A-Za-z0-9_-]` (the characters Anthropic allows in ids); signatures can be long, so such
//! an id may exceed another provider's length limit should the conversation move there.

/// Between the call's own id and the signature.
const SEPARATOR: &str = "__thought_sig__";

/// The tool call id that carries `signature` (standard base64, as Gemini sends it).
pub fn carry(id: &str, signature: &str) -> String {
    let url: String = signature
        .chars()
        .filter(|c| *c != '=')
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    format!("{id}{SEPARATOR}{url}")
}

/// The signature an id carries, as Gemini sent it; none for an id that carries none (or
/// anything but base64url after the separator).
pub fn recover(id: &str) -> Option<String> {
    let (_, url) = id.rsplit_once(SEPARATOR)?;
    if url.is_empty() || !url.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return None;
    }
    let mut sig: String = url
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while sig.len() % 4 != 0 {
        sig.push('=');
    }
    Some(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_survives_the_round_trip() {
        let sig = "CiQBcsjafE7v+k3mQx9/w2Zp8Tn5Yb1Hc4Vd6Jf0Ga7Ks3Ue2WoKdwFyyNp8rQ==";
        let id = carry("call_0", sig);
        assert!(id.starts_with("call_0") && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "{id}");
        assert_eq!(recover(&id).as_deref(), Some(sig));
    }

    #[test]
    fn plain_and_forged_ids_carry_nothing() {
        assert_eq!(recover("call_0"), None);
        assert_eq!(recover("call_0__thought_sig__"), None);
        assert_eq!(recover("call_0__thought_sig__a\"b"), None);
    }
}
