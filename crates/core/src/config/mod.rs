//! Loading agentgateway's local config file: read, expand `$VAR`, parse strictly,
//! and report errors with file, line and field path.

pub mod backend;
pub mod dialects;
pub mod frontend;
mod go_duration;
pub mod llm;
mod llm_backend;
pub mod mcp;
pub mod policies;
pub mod schema;
pub mod settings;
pub mod targets;
pub mod tls;
pub mod types;

use std::fmt;
use std::path::Path;

pub use schema::LocalConfig;

/// A config that could not be loaded: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<inline>`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Field path such as `binds[0].listeners[0].routes[0].policies.urlRewrite`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if !self.path.is_empty() && self.path != "." {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Reads and parses a config file.
pub fn load_file(path: &Path) -> Result<LocalConfig, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: None,
        column: None,
        path: String::new(),
        message: format!("cannot read config: {e}"),
    })?;
    parse_str(&text, &file)
}

/// Parses config text; `file` names it in errors.
pub fn parse_str(text: &str, file: &str) -> Result<LocalConfig, ConfigError> {
    let expanded = expand_env(text, file)?;
    let de = serde_yaml_ng::Deserializer::from_str(&expanded);
    let mut config: LocalConfig = serde_path_to_error::deserialize(de).map_err(|err| {
        // `?` marks a key serde could not capture; the message names it.
        let path = err.path().to_string().trim_end_matches(".?").to_string();
        let inner = err.into_inner();
        let full = inner.to_string();
        let (message, inner_location) = split_message(&full, &path);
        let location = inner_location.or_else(|| inner.location().map(|l| (l.line(), l.column())));
        let location = location.map(|(line, col)| refine_location(&expanded, line, col, &path));
        ConfigError {
            file: file.to_string(),
            line: location.map(|l| l.0),
            column: location.map(|l| l.1),
            path,
            message,
        }
    })?;
    // `mcp:` and `gateways:` / `routes:` become binds; their errors name the key they are about.
    dialects::normalize(&mut config).map_err(|message| ConfigError {
        file: file.to_string(),
        line: None,
        column: None,
        path: String::new(),
        message,
    })?;
    Ok(config)
}

/// serde_yaml renders `path: message at line L column C`, nested once per policy block.
/// Returns the bare message and the innermost (most precise) location.
fn split_message(full: &str, path: &str) -> (String, Option<(usize, usize)>) {
    let (mut msg, location) = match full.find(" at line ") {
        Some(i) => {
            let mut nums = full[i + 9..].split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty());
            let line = nums.next().and_then(|n| n.parse().ok());
            let col = nums.next().and_then(|n| n.parse().ok());
            (&full[..i], line.zip(col))
        }
        None => (full, None),
    };
    while let Some((head, tail)) = msg.split_once(": ") {
        // A nested path (`a.b[0]`), or a bare key (`config`) that a nested parse put in front.
        let bare_key = !head.is_empty() && path.split(['.', '[', ']']).any(|segment| segment == head);
        if head.contains(' ') || !(head.contains(['.', '[']) || bare_key) {
            break;
        }
        msg = tail;
    }
    (msg.to_string(), location)
}

/// When an error is reported at the start of a block, move it to the line of the key the
/// path ends in, if that key is a direct child written in block style below it.
fn refine_location(text: &str, line: usize, column: usize, path: &str) -> (usize, usize) {
    // Keys may contain dots (`llm.system`), so try the longest trailing segments first.
    let tail = path.rsplit(']').next().unwrap_or(path);
    let segments: Vec<&str> = tail.split('.').filter(|s| !s.is_empty()).collect();
    for k in (1..=segments.len().min(4)).rev() {
        let key = segments[segments.len() - k..].join(".");
        if let Some(found) = find_child_key(text, line, column, &key) {
            return found;
        }
    }
    (line, column)
}

/// The position of `key:` written in block style at the block's indentation, below `line`.
fn find_child_key(text: &str, line: usize, column: usize, key: &str) -> Option<(usize, usize)> {
    let indent = column.saturating_sub(1);
    for (i, l) in text.lines().enumerate().skip(line.saturating_sub(1)) {
        let trimmed = l.trim_start();
        let this_indent = l.len() - trimmed.len();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if i + 1 > line && this_indent < indent {
            break;
        }
        let bare = trimmed.trim_start_matches("- ");
        if this_indent >= indent && (bare.starts_with(&format!("{key}:")) || bare.starts_with(&format!("\"{key}\":"))) {
            return Some((i + 1, this_indent + 1));
        }
    }
    None
}

/// Expands `$VAR` and `${VAR}` from the environment, as agentgateway does for the whole
/// file; `$$` is a literal `$`. An unset variable is an error naming its line. Comment lines
/// are left as they are: agentgateway's examples start with
/// `# yaml-language-server: $schema=…`, which is no variable.
pub fn expand_env(text: &str, file: &str) -> Result<String, ConfigError> {
    // Protect `$$` so shellexpand leaves a literal dollar, and every `$` of a comment line.
    const MARK: &str = "\u{0}DOLLAR\u{0}";
    let protected: String = text
        .split_inclusive('\n')
        .map(|line| if line.trim_start().starts_with('#') { line.replace('$', MARK) } else { line.replace("$$", MARK) })
        .collect();
    let expanded = shellexpand::env(&protected).map_err(|e| {
        let needle = format!("${}", e.var_name);
        let braced = format!("${{{}}}", e.var_name);
        let line = text
            .lines()
            .position(|l| l.contains(&braced) || l.contains(&needle))
            .map(|i| i + 1);
        ConfigError {
            file: file.to_string(),
            line,
            column: None,
            path: String::new(),
            message: format!("environment variable `{}` is not set", e.var_name),
        }
    })?;
    Ok(expanded.replace(MARK, "$"))
}

