//! Small value types shared by the config schema: durations, file-or-inline secrets,
//! and the marker for agentgateway fields tollgate does not implement yet.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;


/// An agentgateway field that tollgate knows by name but does not implement yet.
/// Deserializing it always fails, so the loader reports file, line and path instead
/// of silently ignoring configuration the user expects to take effect.
#[derive(Debug, Clone, Copy)]
pub struct Unsupported;

impl<'de> Deserialize<'de> for Unsupported {
    fn deserialize<D: Deserializer<'de>>(_d: D) -> Result<Self, D::Error> {
        Err(de::Error::custom(
            "is an agentgateway field that tollgate does not support yet",
        ))
    }
}

/// A string field of which tollgate implements one value (agentgateway's default): that value
/// loads, the other values agentgateway knows are refused as not supported yet, and anything
/// else is an unknown variant. `$what` names the field in the message.
macro_rules! one_supported_value {
    ($(#[$doc:meta])* $name:ident, $what:literal, $supported:literal, [$($not_yet:literal),+]) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name;

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use serde::de::Error;
                match String::deserialize(d)?.as_str() {
                    $supported => Ok($name),
                    #[allow(unused_parens)] // one value needs none, several do
                    v @ ($($not_yet)|+) => Err(D::Error::custom(format!(concat!($what, " `{}` is not supported yet (only `", $supported, "`)"), v))),
                    other => Err(D::Error::unknown_variant(other, &[$supported, $($not_yet),+])),
                }
            }
        }
    };
}
pub(crate) use one_supported_value;

/// A `config:` key that only means something inside agentgateway's control plane (xDS, the
/// mesh CA, SPIFFE identities, HBONE): refused with that reason rather than "not yet".
#[derive(Debug, Clone, Copy)]
pub struct ControlPlaneOnly;

impl<'de> Deserialize<'de> for ControlPlaneOnly {
    fn deserialize<D: Deserializer<'de>>(_d: D) -> Result<Self, D::Error> {
        Err(de::Error::custom("needs agentgateway's control plane (xDS, mesh CA, SPIFFE); not supported"))
    }
}

/// A Go-style duration (`1s`, `100ms`, `1m30s`), as agentgateway writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_go_duration(&text).map(GoDuration).map_err(de::Error::custom)
    }
}

/// Parses a Go duration string; negative durations are rejected.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let nanos = super::go_duration::parse_nanos(text.trim())
        .map_err(|why| format!("invalid duration `{text}`: {why} (expected Go style, e.g. `10s`, `1m30s`, `250ms`)"))?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| format!("duration `{text}` must not be negative"))
}

/// A secret or document given inline or as `{file: path}`; files are read at load time
/// (relative paths resolve against the working directory, as agentgateway reads them).
#[derive(Clone, PartialEq, Eq)]
pub struct FileOrInline(pub String);

impl fmt::Debug for FileOrInline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileOrInline(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for FileOrInline {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileOrInline;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or {file: path}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileOrInline, E> {
                Ok(FileOrInline(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileOrInline, A::Error> {
                let mut file: Option<String> = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "file" => file = Some(map.next_value()?),
                        other => return Err(de::Error::unknown_field(other, &["file"])),
                    }
                }
                let file = file.ok_or_else(|| de::Error::missing_field("file"))?;
                read_config_file(&file).map(FileOrInline).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Resolves a path named in the config. Relative paths are taken from the working
/// directory, as agentgateway does (its examples say `file: ./examples/…/openapi.json` and
/// are run from the repository root); errors show the resolved path.
pub fn resolve_config_path(path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    std::path::absolute(&p).unwrap_or(p)
}

/// Reads a file named in the config, with an error that names it.
pub fn read_config_file(path: &str) -> Result<String, String> {
    let full = resolve_config_path(path);
    std::fs::read_to_string(&full).map_err(|e| format!("cannot read file `{}`: {e}", full.display()))
}

/// Accepts any YAML value without interpreting it; used where tollgate parses a block now
/// and a later stage (or issue) gives it meaning, e.g. MCP target transports.
pub type AnyValue = serde_yaml_ng::Value;
