//! AWS keys from the shared credentials file, the standard chain's step after the environment:
//! `AWS_SHARED_CREDENTIALS_FILE` (else `~/.aws/credentials`), profile `AWS_PROFILE` (else
//! `default`). Read when the config is loaded (a reload reads it again).

use std::path::PathBuf;

/// Access key id, secret key and session token of a profile.
pub type ProfileKeys = (String, String, Option<String>);

/// The keys of the profile in effect, when the file has them.
pub fn profile_keys() -> Result<Option<ProfileKeys>, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let path = match env("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) => PathBuf::from(p),
        None => match env("HOME") {
            Some(home) => PathBuf::from(home).join(".aws").join("credentials"),
            None => return Ok(None),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    Ok(parse(&text, &profile))
}

/// The keys of `profile` in an INI credentials file.
fn parse(text: &str, profile: &str) -> Option<ProfileKeys> {
    let (mut id, mut secret, mut token) = (None, None, None);
    let mut in_profile = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        let Some((key, value)) = line.split_once('=').filter(|_| in_profile) else { continue };
        let value = value.trim().to_string();
        match key.trim() {
            "aws_access_key_id" => id = Some(value),
            "aws_secret_access_key" => secret = Some(value),
            "aws_session_token" => token = Some(value),
            _ => {}
        }
    }
    Some((id?, secret?, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_read_by_name() {
        let file = "# keys\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key=s1\n\n[work]\naws_access_key_id=AKIDWORK\naws_secret_access_key = s2\naws_session_token = tok\n";
        assert_eq!(parse(file, "default"), Some(("AKIDDEFAULT".into(), "s1".into(), None)));
        assert_eq!(parse(file, "work"), Some(("AKIDWORK".into(), "s2".into(), Some("tok".into()))));
        assert_eq!(parse(file, "missing"), None);
        assert_eq!(parse("[default]\naws_access_key_id=x\n", "default"), None, "a profile without a secret has no keys");
    }
}
