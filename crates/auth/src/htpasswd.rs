//! htpasswd user databases, in the schemes Apache's `htpasswd` writes and agentgateway
//! accepts: bcrypt (`$2y$`, `$2a$`, `$2b$`), Apache MD5 (`$apr1$`) and SHA-1 (`{SHA}`).
//! Traditional DES `crypt` entries are refused at load (obsolete, 8-character passwords).

use std::collections::HashMap;

use base64::Engine;
use md5::{Digest as _, Md5};
use sha1::Sha1;

/// A user's stored password hash.
#[derive(Clone)]
pub enum StoredHash {
    /// `$2y$…` (checked with the bcrypt KDF, on the blocking pool).
    Bcrypt(String),
    /// `$apr1$salt$hash`.
    Apr1 {
        /// Up to 8 characters.
        salt: String,
        /// The whole entry, to compare with.
        full: String,
    },
    /// `{SHA}base64(sha1(password))`.
    Sha1([u8; 20]),
}

/// Users by name.
#[derive(Default)]
pub struct Htpasswd {
    users: HashMap<String, StoredHash>,
}

impl std::fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Htpasswd({} users)", self.users.len())
    }
}

impl Htpasswd {
    /// Parses `user:hash` lines (blank lines and `#` comments skipped).
    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = n + 1;
            let (user, hash) = line.split_once(':').ok_or_else(|| format!("htpasswd line {at} is not `user:hash`"))?;
            let stored = if ["$2y$", "$2a$", "$2b$"].iter().any(|p| hash.starts_with(p)) {
                hash.parse::<bcrypt::HashParts>().map_err(|e| format!("htpasswd line {at} ({user}) has a bad bcrypt hash ({e})"))?;
                StoredHash::Bcrypt(hash.to_string())
            } else if let Some(rest) = hash.strip_prefix("$apr1$") {
                let salt = rest.split('$').next().unwrap_or_default();
                if salt.is_empty() || salt.len() > 8 || rest.len() != salt.len() + 1 + 22 {
                    return Err(format!("htpasswd line {at} ({user}) has a bad $apr1$ hash"));
                }
                StoredHash::Apr1 { salt: salt.to_string(), full: hash.to_string() }
            } else if let Some(b64) = hash.strip_prefix("{SHA}") {
                let digest = base64::engine::general_purpose::STANDARD.decode(b64).ok().and_then(|d| <[u8; 20]>::try_from(d).ok());
                StoredHash::Sha1(digest.ok_or_else(|| format!("htpasswd line {at} ({user}) has a bad {{SHA}} hash"))?)
            } else {
                return Err(format!("htpasswd line {at} ({user}): this hash scheme is not supported yet (use bcrypt, $apr1$ or {{SHA}})"));
            };
            users.insert(user.to_string(), stored);
        }
        Ok(Htpasswd { users })
    }

    /// The stored hash of `user`.
    pub fn get(&self, user: &str) -> Option<&StoredHash> {
        self.users.get(user)
    }
}

/// Whether two byte strings are equal, in time that depends only on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl StoredHash {
    /// Whether `password` matches (bcrypt is slow: call it off the proxy's worker threads).
    pub fn verify(&self, password: &str) -> bool {
        match self {
            StoredHash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            StoredHash::Apr1 { salt, full } => same(apr1(password, salt).as_bytes(), full.as_bytes()),
            StoredHash::Sha1(d) => same(&Sha1::digest(password.as_bytes()), d),
        }
    }

    /// Whether checking is slow enough to belong on the blocking pool.
    pub fn is_slow(&self) -> bool {
        matches!(self, StoredHash::Bcrypt(_))
    }
}

const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn to64(out: &mut String, mut v: u32, n: usize) {
    for _ in 0..n {
        out.push(ITOA64[(v & 0x3f) as usize] as char);
        v >>= 6;
    }
}

/// Apache's MD5-crypt (`$apr1$salt$hash`), as `htpasswd -m` writes it.
pub fn apr1(password: &str, salt: &str) -> String {
    const MAGIC: &[u8] = b"$apr1$";
    let (pw, salt) = (password.as_bytes(), salt.as_bytes());
    let alt = Md5::new().chain_update(pw).chain_update(salt).chain_update(pw).finalize();
    let mut ctx = Md5::new().chain_update(pw).chain_update(MAGIC).chain_update(salt);
    let mut left = pw.len();
    while left > 0 {
        ctx.update(&alt[..left.min(16)]);
        left = left.saturating_sub(16);
    }
    let mut i = pw.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(pw);
        } else {
            c.update(fin);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(pw);
        }
        if round & 1 == 1 {
            c.update(fin);
        } else {
            c.update(pw);
        }
        fin = c.finalize();
    }
    let mut out = format!("$apr1${}$", String::from_utf8_lossy(salt));
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        to64(&mut out, (u32::from(fin[a]) << 16) | (u32::from(fin[b]) << 8) | u32::from(fin[c]), 4);
    }
    to64(&mut out, u32::from(fin[11]), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apr1_matches_openssl() {
        // `openssl passwd -apr1 -salt saltsalt password`
        assert_eq!(apr1("password", "saltsalt"), "$apr1$saltsalt$yAAkm4libquA.ZWLHbSBq/");
    }

    #[test]
    fn each_scheme_verifies_and_bad_lines_are_named() {
        let bc = bcrypt::hash("pw-b", 4).unwrap().replacen("$2b$", "$2y$", 1);
        let sha = base64::engine::general_purpose::STANDARD.encode(Sha1::digest(b"pw-s"));
        let text = format!("# users\nalice:{}\nbob:{bc}\n\ncarol:{{SHA}}{sha}\n", apr1("pw-a", "abcdefgh"));
        let db = Htpasswd::parse(&text).unwrap();
        assert!(db.get("alice").unwrap().verify("pw-a"));
        assert!(!db.get("alice").unwrap().verify("pw-b"));
        assert!(db.get("bob").unwrap().verify("pw-b"));
        assert!(db.get("carol").unwrap().verify("pw-s"));
        assert!(!db.get("carol").unwrap().verify("pw-a"));
        assert!(db.get("dave").is_none());
        assert!(Htpasswd::parse("eve:abXYZ12345678").unwrap_err().contains("line 1 (eve): this hash scheme is not supported yet"));
        assert!(Htpasswd::parse("x\n").unwrap_err().contains("line 1"));
    }
}
