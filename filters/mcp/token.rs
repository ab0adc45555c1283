//! Session ids that carry the session: which targets it reached and their own session ids,
//! so any tollgate process (after a restart, an upgrade, or on another replica) can resume
//! it. With `config.session.key` the id is sealed with AES-256-GCM (secret and tamper-proof);
//! without, it is plain base64url JSON, as agentgateway does.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::upstream::{ClientHello, SavedTarget};

/// Longest session id accepted (ids travel in a header on every request).
pub const MAX_ID: usize = 8 * 1024;

/// What a session id says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    /// Fingerprint of the backend's target names, so an id is not resumed against other targets.
    #[serde(rename = "b")]
    pub backend: u64,
    /// The client's `initialize`.
    #[serde(rename = "h")]
    pub hello: ClientHello,
    /// Per target: `None` when the target was skipped (failOpen), else what resumes it.
    #[serde(rename = "t")]
    pub targets: Vec<Option<SavedTarget>>,
    /// Makes every id unique.
    #[serde(rename = "r")]
    pub random: u64,
}

/// Seals and opens session ids.
pub struct Codec {
    cipher: Option<Aes256Gcm>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Codec {{ encrypted: {} }}", self.cipher.is_some())
    }
}

impl Codec {
    /// `key`: 64 hex characters (32 bytes), or none for unsealed ids.
    pub fn new(key: Option<&str>) -> Result<Codec, String> {
        let cipher = match key {
            None => None,
            Some(hex) => {
                let bytes = decode_hex(hex.trim()).filter(|b| b.len() == 32).ok_or("config.session.key must be 64 hex characters (32 bytes)")?;
                Some(Aes256Gcm::new_from_slice(&bytes).map_err(|e| e.to_string())?)
            }
        };
        Ok(Codec { cipher })
    }

    /// The id for a state.
    pub fn encode(&self, state: &SessionState) -> String {
        let json = serde_json::to_vec(state).expect("session state serializes");
        match &self.cipher {
            None => URL_SAFE_NO_PAD.encode(json),
            Some(c) => {
                let nonce: [u8; 12] = rand::random();
                let mut out = nonce.to_vec();
                out.extend(c.encrypt(Nonce::from_slice(&nonce), json.as_slice()).expect("AES-GCM encrypts"));
                URL_SAFE_NO_PAD.encode(out)
            }
        }
    }

    /// The state in an id; `None` for anything not made by this key.
    pub fn decode(&self, id: &str) -> Option<SessionState> {
        if id.len() > MAX_ID {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(id).ok()?;
        let json = match &self.cipher {
            None => raw,
            Some(c) => {
                if raw.len() < 12 {
                    return None;
                }
                let (nonce, sealed) = raw.split_at(12);
                c.decrypt(Nonce::from_slice(nonce), sealed).ok()?
            }
        };
        serde_json::from_slice(&json).ok()
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state() -> SessionState {
        SessionState {
            backend: 7,
            hello: ClientHello { protocol_version: "2025-11-25".into(), params: json!({"capabilities": {}}) },
            targets: vec![Some(SavedTarget { session: Some("abc".into()), version: None }), None],
            random: 42,
        }
    }

    #[test]
    fn sealed_ids_round_trip_and_resist_tampering() {
        let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let codec = Codec::new(Some(key)).unwrap();
        let id = codec.encode(&state());
        assert!(!String::from_utf8_lossy(&URL_SAFE_NO_PAD.decode(&id).unwrap()).contains("abc"));
        assert_eq!(codec.decode(&id), Some(state()));
        let mut bad = id.into_bytes();
        let last = bad.len() - 2;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(codec.decode(std::str::from_utf8(&bad).unwrap()), None);
        let other = Codec::new(Some(&key.replace('0', "1"))).unwrap();
        assert_eq!(other.decode(&codec.encode(&state())), None);
        assert!(Codec::new(Some("abcd")).is_err());
    }

    #[test]
    fn plain_ids_round_trip() {
        let codec = Codec::new(None).unwrap();
        assert_eq!(codec.decode(&codec.encode(&state())), Some(state()));
        assert_eq!(codec.decode("not-an-id"), None);
    }
}
