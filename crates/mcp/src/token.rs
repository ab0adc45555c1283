//! Session ids that carry the session: which targets it reached and their own session ids,
//! so any tollgate process (after a restart, an upgrade, or on another replica) can resume
//! it. Ids are always sealed with AES-256-GCM (secret and tamper-proof): with
//! `config.session.key`, or else with a key tollgate generates at first start and keeps in
//! its runtime directory (`session.key`, mode 0600), so restarts and `--take-over` keep
//! sessions. (agentgateway sends plain base64 JSON without a key: an edited id would then
//! choose the `Mcp-Session-Id` a target receives.) Replicas share sessions only when they
//! share `session.key`.

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
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Codec { sealed }")
    }
}

impl Codec {
    /// `key`: 64 hex characters (32 bytes).
    pub fn new(key: &str) -> Result<Codec, String> {
        let bytes = decode_hex(key.trim()).filter(|b| b.len() == 32).ok_or("config.session.key must be 64 hex characters (32 bytes)")?;
        Ok(Codec { cipher: Aes256Gcm::new_from_slice(&bytes).map_err(|e| e.to_string())? })
    }

    /// The id for a state.
    pub fn encode(&self, state: &SessionState) -> String {
        let json = serde_json::to_vec(state).expect("session state serializes");
        let nonce: [u8; 12] = rand::random();
        let mut out = nonce.to_vec();
        out.extend(self.cipher.encrypt(Nonce::from_slice(&nonce), json.as_slice()).expect("AES-GCM encrypts"));
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The state in an id; `None` for anything not made by this key.
    pub fn decode(&self, id: &str) -> Option<SessionState> {
        if id.len() > MAX_ID {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(id).ok()?;
        if raw.len() < 12 {
            return None;
        }
        let (nonce, sealed) = raw.split_at(12);
        let json = self.cipher.decrypt(Nonce::from_slice(nonce), sealed).ok()?;
        serde_json::from_slice(&json).ok()
    }
}

/// A fresh random key, as 64 hex characters.
pub fn random_key() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key kept in `dir/session.key`, created (mode 0600) on first use.
pub fn load_or_create_key(dir: &std::path::Path) -> Result<String, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("session.key");
    let read = |p: &std::path::Path| -> Result<Option<String>, String> {
        match std::fs::read_to_string(p) {
            Ok(text) if Codec::new(&text).is_ok() => Ok(Some(text.trim().to_string())),
            Ok(_) => Err(format!("{} does not hold a session key (64 hex characters); remove it to make a new one", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", p.display())),
        }
    };
    if let Some(key) = read(&path)? {
        return Ok(key);
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let key = random_key();
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
        Ok(mut f) => {
            f.write_all(key.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(key)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(&path)?.ok_or_else(|| format!("{} is empty", path.display())),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
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
        let codec = Codec::new(key).unwrap();
        let id = codec.encode(&state());
        assert!(!String::from_utf8_lossy(&URL_SAFE_NO_PAD.decode(&id).unwrap()).contains("abc"));
        assert_eq!(codec.decode(&id), Some(state()));
        let mut bad = id.into_bytes();
        let last = bad.len() - 2;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(codec.decode(std::str::from_utf8(&bad).unwrap()), None);
        let other = Codec::new(&key.replace('0', "1")).unwrap();
        assert_eq!(other.decode(&codec.encode(&state())), None);
        assert!(Codec::new("abcd").is_err());
        // A plain base64 JSON id (agentgateway's unsealed form) is refused.
        let plain = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&state()).unwrap());
        assert_eq!(codec.decode(&plain), None);
        assert_eq!(codec.decode("not-an-id"), None);
    }

    #[test]
    fn generated_key_is_kept_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tollgate-key-{}", rand::random::<u64>()));
        let first = load_or_create_key(&dir).unwrap();
        assert_eq!(load_or_create_key(&dir).unwrap(), first);
        let mode = std::fs::metadata(dir.join("session.key")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(Codec::new(&first).is_ok());
        std::fs::write(dir.join("session.key"), "nonsense").unwrap();
        assert!(load_or_create_key(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
