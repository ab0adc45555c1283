//! The `oidc` policy's cookies, as agentgateway writes them: a transaction cookie per login
//! attempt (`agw_oidc_t_<policy>.<transaction>`: nonce, PKCE verifier, where to return; five
//! minutes) and the session cookie (`agw_oidc_s_<policy>`: the ID token; at most an hour).
//! Values are AES-256-GCM sealed (random 96-bit nonce, standard base64 of nonce ‖ ciphertext ‖
//! tag) under the key in `OIDC_COOKIE_SECRET`, so the browser can neither read nor forge them.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use pingora::http::RequestHeader;
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Every cookie of the policy starts with this; all are removed before the upstream.
pub const PREFIX: &str = "agw_oidc_";
/// Largest session cookie written (browsers keep about 4 KiB per cookie).
pub const MAX_COOKIE_BYTES: usize = 3800;

/// Seals and opens cookie values.
pub struct CookieJar {
    cipher: Aes256Gcm,
    /// `agw_oidc_s_<hex16>`.
    pub session_name: String,
    /// `agw_oidc_t_<hex16>` (a `.transaction` suffix follows).
    pub transaction_prefix: String,
    secure: bool,
}

impl CookieJar {
    /// `secret` is 64 hex digits (32 bytes); `policy_id` names the cookies.
    pub fn new(secret: &str, policy_id: &str, secure: bool) -> Result<CookieJar, String> {
        let key = hex::decode(secret.trim()).ok().filter(|k| k.len() == 32).ok_or("OIDC_COOKIE_SECRET must be 64 hex digits (32 bytes)")?;
        let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| "bad cookie key".to_string())?;
        let tag = hex::encode(&Sha256::digest(policy_id.as_bytes())[..8]);
        Ok(CookieJar { cipher, session_name: format!("{PREFIX}s_{tag}"), transaction_prefix: format!("{PREFIX}t_{tag}"), secure })
    }

    /// `value` sealed for a cookie.
    pub fn seal<T: Serialize>(&self, value: &T) -> Result<String, String> {
        let plain = serde_json::to_vec(value).map_err(|e| e.to_string())?;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self.cipher.encrypt(Nonce::from_slice(&nonce), plain.as_slice()).map_err(|_| "sealing failed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// A sealed value opened; `None` when it was not sealed with this key or was altered.
    pub fn open<T: DeserializeOwned>(&self, cookie: &str) -> Option<T> {
        let raw = base64::engine::general_purpose::STANDARD.decode(cookie).ok()?;
        if raw.len() < 12 + 16 {
            return None;
        }
        let (nonce, sealed) = raw.split_at(12);
        let plain = self.cipher.decrypt(Nonce::from_slice(nonce), sealed).ok()?;
        serde_json::from_slice(&plain).ok()
    }

    /// A `Set-Cookie` value (`max_age` 0 clears the cookie).
    pub fn set_cookie(&self, name: &str, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; HttpOnly; SameSite=Lax{secure}; Path=/; Max-Age={max_age}")
    }
}

/// The value of cookie `name` in the request.
pub fn cookie<'r>(req: &'r RequestHeader, name: &str) -> Option<&'r str> {
    cookies(req).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// Every `name=value` pair of the request's `Cookie` headers.
pub fn cookies(req: &RequestHeader) -> impl Iterator<Item = (&str, &str)> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
}

/// Removes the policy's cookies (`agw_oidc_*`) from the request, keeping the others.
pub fn strip(req: &mut RequestHeader) -> pingora::Result<()> {
    if !cookies(req).any(|(k, _)| k.starts_with(PREFIX)) {
        return Ok(());
    }
    let kept: Vec<String> = cookies(req).filter(|(k, _)| !k.starts_with(PREFIX)).map(|(k, v)| format!("{k}={v}")).collect();
    req.remove_header(&http::header::COOKIE);
    if !kept.is_empty() {
        req.insert_header(http::header::COOKIE, kept.join("; "))?;
    }
    Ok(())
}

/// `n` random bytes as unpadded base64url (nonces, PKCE verifiers, transaction ids).
pub fn random_token(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_unaltered() {
        let jar = CookieJar::new(&"ab".repeat(32), "p", false).unwrap();
        let other = CookieJar::new(&"cd".repeat(32), "p", false).unwrap();
        let sealed = jar.seal(&serde_json::json!({"a": 1})).unwrap();
        assert_eq!(jar.open::<serde_json::Value>(&sealed).unwrap()["a"], 1);
        assert!(other.open::<serde_json::Value>(&sealed).is_none());
        let mut bytes = base64::engine::general_purpose::STANDARD.decode(&sealed).unwrap();
        bytes[20] ^= 1;
        assert!(jar.open::<serde_json::Value>(&base64::engine::general_purpose::STANDARD.encode(bytes)).is_none());
        assert!(CookieJar::new("short", "p", false).is_err());
        assert!(jar.set_cookie("n", "v", 5).contains("HttpOnly; SameSite=Lax; Path=/; Max-Age=5"));
    }

    #[test]
    fn only_the_policys_cookies_are_stripped() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("cookie", "a=1; agw_oidc_s_x=secret; b=2").unwrap();
        strip(&mut req).unwrap();
        assert_eq!(req.headers["cookie"], "a=1; b=2");
    }
}
