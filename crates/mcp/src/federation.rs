//! Several targets behind one endpoint: `initialize` reaches each and the answers merge;
//! lists fan out and merge with names prefixed per `prefixMode` and resource URIs as
//! `<target>+<uri>`; a call goes only to the target that owns the name.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::answer::Answer;
use super::client::CallCtx;
use super::error::McpError;
use super::uri_template;
use super::jsonrpc;
use super::session::McpSession;
use super::target::Target;
use super::upstream::{relayed_id, ClientHello, Upstream, RELAY_QUEUE};
use tollgate_core::config::mcp::{FailureMode, McpBackend, PrefixMode, StatefulMode};
use tollgate_core::json_pointer::Pointer as _;

/// Most pages read from one target for one list.
const MAX_PAGES: usize = 64;

/// The lists that fan out: method, result key, and the field that names an item.
const LISTS: &[(&str, &str, &str)] = &[
    ("tools/list", "tools", "name"),
    ("prompts/list", "prompts", "name"),
    ("resources/list", "resources", "uri"),
    ("resources/templates/list", "resourceTemplates", "uriTemplate"),
];

/// An MCP backend's targets and modes.
#[derive(Debug)]
pub struct Federation {
    /// Targets, in config order.
    pub targets: Vec<Target>,
    /// Whether names carry `<target>_`.
    pub prefixed: bool,
    /// failOpen or failClosed.
    pub failure: FailureMode,
    /// `statefulMode: stateless`.
    pub stateless: bool,
    /// Refuse browsers' requests from other origins.
    pub dns_rebinding_protection: bool,
    /// Hash of the backend's identity and targets, stored in session ids: an id is honoured
    /// only by the backend that made it, with the same targets.
    pub fingerprint: u64,
}

impl Federation {
    /// Compiles the backend.
    pub fn compile(b: &McpBackend, identity: &str) -> Result<Federation, String> {
        if b.targets.is_empty() {
            return Err("an mcp backend needs at least one target".into());
        }
        let targets = b.targets.iter().map(Target::compile).collect::<Result<Vec<_>, _>>()?;
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].iter().any(|o| o.name == t.name) {
                return Err(format!("two targets are named `{}`", t.name));
            }
        }
        let prefixed = match b.prefix_mode {
            PrefixMode::Always => true,
            PrefixMode::Never => false,
            PrefixMode::Conditional => targets.len() > 1,
        };
        // FNV-1a over the identity and the targets' canonical form: stable across processes.
        let canonical: Vec<String> = targets.iter().map(Target::canonical).collect();
        let mut fingerprint: u64 = 0xcbf29ce484222325;
        for b in format!("{identity}\n{}", canonical.join("\n")).bytes() {
            fingerprint = (fingerprint ^ u64::from(b)).wrapping_mul(0x100000001b3);
        }
        Ok(Federation { targets, prefixed, failure: b.failure_mode, stateless: b.stateful_mode == StatefulMode::Stateless, dns_rebinding_protection: b.dns_rebinding_protection.unwrap_or(false), fingerprint })
    }

    /// Whether failing targets are skipped.
    pub fn fail_open(&self) -> bool {
        self.failure == FailureMode::FailOpen
    }

    /// `<target>+` for target `i` when URIs are prefixed.
    pub fn uri_prefix(&self, i: usize) -> Option<Arc<str>> {
        self.prefixed.then(|| Arc::from(format!("{}+", self.targets[i].name)))
    }

    /// Target and unprefixed name for a prefixed tool or prompt name.
    fn split_name<'a>(&self, name: &'a str) -> Option<(usize, &'a str)> {
        self.targets
            .iter()
            .enumerate()
            .filter(|(_, t)| name.len() > t.name.len() + 1 && name.starts_with(&t.name) && name.as_bytes()[t.name.len()] == b'_')
            .max_by_key(|(_, t)| t.name.len())
            .map(|(i, t)| (i, &name[t.name.len() + 1..]))
    }

    /// What a client message is about (for telemetry): method, owning target, resource.
    pub fn describe(&self, msg: &Value) -> tollgate_core::ctx::McpExchange {
        let method = jsonrpc::method(msg).to_string();
        let (pointer, kind, is_uri) = match method.as_str() {
            "tools/call" => ("/params/name", "tool", false),
            "prompts/get" => ("/params/name", "prompt", false),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => ("/params/uri", "resource", true),
            _ => return tollgate_core::ctx::McpExchange { method, ..Default::default() },
        };
        let public = msg.at(pointer).and_then(Value::as_str).unwrap_or("");
        let owned = match (self.prefixed, is_uri) {
            (true, false) => self.split_name(public),
            (true, true) => self.split_uri(public),
            (false, _) if self.targets.len() == 1 => Some((0, public)),
            _ => None,
        };
        tollgate_core::ctx::McpExchange {
            method,
            target: owned.map(|(i, _)| self.targets[i].name.clone()),
            resource_type: Some(kind),
            resource: Some(owned.map_or(public, |(_, n)| n).to_string()),
            ..Default::default()
        }
    }

    /// Target and original URI for a prefixed resource URI.
    fn split_uri<'a>(&self, uri: &'a str) -> Option<(usize, &'a str)> {
        let (t, rest) = uri.split_once('+')?;
        self.targets.iter().position(|x| x.name == t).map(|i| (i, rest))
    }
}

/// Connects every target for a new session and merges their `initialize` results.
pub async fn connect_all(fed: &Arc<Federation>, cc: &CallCtx, hello: &ClientHello, stream_tx: &mpsc::Sender<Value>) -> Result<(Vec<Option<Upstream>>, Value), McpError> {
    connect_some(fed, cc, hello, stream_tx, None).await
}

/// Connects every target, or only `only` (a request that one target owns needs no other).
pub async fn connect_some(fed: &Arc<Federation>, cc: &CallCtx, hello: &ClientHello, stream_tx: &mpsc::Sender<Value>, only: Option<usize>) -> Result<(Vec<Option<Upstream>>, Value), McpError> {
    let attempts = fed.targets.iter().enumerate().map(|(i, t)| {
        let relay = super::upstream::Relay { target: i, uri_prefix: fed.uri_prefix(i), tx: stream_tx.clone() };
        async move {
            match only {
                Some(o) if o != i => None,
                _ => Some(Upstream::connect(t, cc, hello, &relay).await),
            }
        }
    });
    let results = futures::future::join_all(attempts).await;
    let mut upstreams = Vec::new();
    let mut inits = Vec::new();
    let mut failure = None;
    for (i, r) in results.into_iter().enumerate() {
        let Some(r) = r else {
            upstreams.push(None);
            continue;
        };
        match r {
            Ok((u, init)) => {
                upstreams.push(Some(u));
                inits.push((i, init));
            }
            Err(e) => {
                let e = e.at(&fed.targets[i].name);
                log::warn!("MCP {e}");
                failure.get_or_insert(e);
                upstreams.push(None);
            }
        }
    }
    if let Some(e) = failure {
        if !fed.fail_open() || inits.is_empty() {
            futures::future::join_all(upstreams.iter().flatten().map(|u| u.close(cc))).await;
            return Err(e);
        }
    }
    Ok((upstreams, merge_initialize(fed, &inits)))
}

/// One target's answer as is; several merge: the lowest protocol version, the union of
/// capabilities, the gateway's own name, and every target's instructions.
fn merge_initialize(fed: &Federation, inits: &[(usize, Value)]) -> Value {
    if let [(_, only)] = inits {
        if fed.targets.len() == 1 {
            return only.clone();
        }
    }
    let version = inits.iter().filter_map(|(_, r)| r.get("protocolVersion").and_then(Value::as_str)).min().unwrap_or("2025-06-18");
    let mut caps = Map::new();
    for (_, r) in inits {
        if let Some(Value::Object(c)) = r.get("capabilities") {
            merge_into(&mut caps, c);
        }
    }
    let instructions: Vec<String> = inits
        .iter()
        .filter_map(|(i, r)| r.get("instructions").and_then(Value::as_str).map(|s| format!("{}: {s}", fed.targets[*i].name)))
        .collect();
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": caps,
        "serverInfo": {"name": "tollgate", "version": env!("CARGO_PKG_VERSION")},
    });
    if !instructions.is_empty() {
        result["instructions"] = json!(instructions.join("\n\n"));
    }
    result
}

fn merge_into(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => merge_into(a, b),
            (Some(Value::Bool(a)), Value::Bool(b)) => *a |= *b,
            (None, v) => {
                into.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
}

impl McpSession {
    /// Answers one client request; target messages that belong to it go to `tx`. Failures
    /// are JSON-RPC error responses with the request's id, except a target that lost its
    /// session ([`McpError::SessionGone`]): the client must then start a new session.
    /// `verbatim`: the caller can write a target's answer as the bytes it sent (a front that
    /// must parse every answer anyway says no, so a body is not checked and then parsed).
    pub async fn handle_request(&self, msg: Value, cc: &CallCtx, tx: &mpsc::Sender<Value>, verbatim: bool) -> Result<Answer, McpError> {
        self.busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _done = Busy(self);
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let method = jsonrpc::method(&msg).to_string();
        let outcome = match method.as_str() {
            "ping" => Ok(Answer::Message(jsonrpc::result(&id, json!({})))),
            "logging/setLevel" => self.broadcast_request(&msg, cc, tx).await.map(Answer::Message),
            m => match LISTS.iter().find(|(lm, _, _)| *lm == m) {
                Some(&(_, key, field)) => self.list(&msg, key, field, cc, tx).await.map(|r| Answer::Message(jsonrpc::result(&id, r))),
                None => self.route(msg, cc, tx, verbatim).await,
            },
        };
        match outcome {
            Err(McpError::SessionGone) => Err(McpError::SessionGone),
            Err(e) => Ok(Answer::Message(e.to_response(&id))),
            Ok(a) => Ok(a),
        }
    }

    /// A client notification: cancellation and the like reach every target.
    pub async fn handle_notification(&self, msg: Value, cc: &CallCtx) {
        if jsonrpc::method(&msg) == "notifications/initialized" {
            return; // each target got its own at connect time
        }
        let sends = self.upstreams.iter().flatten().map(|u| u.notify(cc, msg.clone()));
        for r in futures::future::join_all(sends).await {
            if let Err(e) = r {
                tracing::debug!("MCP notification not delivered: {e}");
            }
        }
    }

    /// The client's answer to a target's request (sampling, elicitation, roots).
    pub async fn handle_response(&self, mut msg: Value, cc: &CallCtx) -> Result<(), McpError> {
        let (target, id) = msg.get("id").and_then(relayed_id).ok_or_else(|| McpError::InvalidParams("a response to no request of this session".into()))?;
        let up = self.upstreams.get(target).and_then(Option::as_ref).ok_or_else(|| McpError::InvalidParams("a response for an unknown target".into()))?;
        msg["id"] = id;
        up.notify(cc, msg).await.map_err(|e| e.at(&self.fed.targets[target].name))
    }

    fn live(&self) -> impl Iterator<Item = (usize, &Upstream)> {
        self.upstreams.iter().enumerate().filter_map(|(i, u)| u.as_ref().map(|u| (i, u)))
    }

    async fn broadcast_request(&self, msg: &Value, cc: &CallCtx, tx: &mpsc::Sender<Value>) -> Result<Value, McpError> {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let calls = self.live().map(|(i, u)| async move { (i, u.request(cc, msg.clone(), &self.relay(i, tx)).await) });
        for (i, r) in futures::future::join_all(calls).await {
            if let Err(e) = r {
                if !self.fed.fail_open() {
                    return Err(e.at(&self.fed.targets[i].name));
                }
            }
        }
        Ok(jsonrpc::result(&id, json!({})))
    }

    /// Every page of one list from one target.
    async fn list_one(&self, i: usize, up: &Upstream, msg: &Value, key: &str, cc: &CallCtx, tx: &mpsc::Sender<Value>) -> Result<(Vec<Value>, Value), McpError> {
        let mut items = Vec::new();
        let mut first = Value::Null;
        let mut cursor: Option<Value> = None;
        for page in 0..MAX_PAGES {
            let mut params = msg.get("params").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
            match &cursor {
                Some(c) => params["cursor"] = c.clone(),
                None => {
                    params.as_object_mut().map(|p| p.remove("cursor"));
                }
            }
            let req = jsonrpc::request(json!(format!("tollgate-list-{page}")), jsonrpc::method(msg), params);
            let resp = up.request(cc, req, &self.relay(i, tx)).await?;
            if resp.at("/error/code").and_then(Value::as_i64) == Some(jsonrpc::METHOD_NOT_FOUND) {
                break; // the target does not offer this list
            }
            let Some(result) = resp.get("result") else {
                let why = resp.at("/error/message").and_then(Value::as_str).unwrap_or("no result");
                return Err(McpError::Upstream(format!("{}: {why}", jsonrpc::method(msg))));
            };
            items.extend(result.get(key).and_then(Value::as_array).cloned().unwrap_or_default());
            if first.is_null() {
                first = result.clone();
            }
            cursor = result.get("nextCursor").filter(|c| !c.is_null()).cloned();
            if cursor.is_none() {
                break;
            }
        }
        Ok((items, first))
    }

    /// Fans a list out to every target and merges it.
    async fn list(&self, msg: &Value, key: &str, field: &str, cc: &CallCtx, tx: &mpsc::Sender<Value>) -> Result<Value, McpError> {
        let calls = self.live().map(|(i, u)| async move { (i, self.list_one(i, u, msg, key, cc, tx).await) });
        let results = futures::future::join_all(calls).await;
        let mut merged = Vec::new();
        let mut template = None;
        let mut owners = self.owners.lock().unwrap().clone();
        let mut any_ok = false;
        let mut failure = None;
        for (i, r) in results {
            let (items, first) = match r {
                Ok(x) => x,
                Err(e) => {
                    let e = e.at(&self.fed.targets[i].name);
                    log::warn!("MCP {e}");
                    failure.get_or_insert(e);
                    continue;
                }
            };
            any_ok = true;
            template.get_or_insert(first);
            for mut item in items {
                let Some(name) = item.get(field).and_then(Value::as_str).map(str::to_string) else { continue };
                if !allowed(cc, key, &name, &self.fed.targets[i].name) {
                    continue;
                }
                let is_uri = field != "name";
                let public = match (self.fed.prefixed, is_uri) {
                    (false, _) => name.clone(),
                    (true, false) => format!("{}_{name}", self.fed.targets[i].name),
                    (true, true) => format!("{}+{name}", self.fed.targets[i].name),
                };
                if !self.fed.prefixed {
                    let k = format!("{key}:{public}");
                    if owners.get(&k).is_some_and(|&o| o != i) {
                        log::warn!("MCP {key} `{public}` exists on several targets; keeping the first");
                        continue;
                    }
                    owners.insert(k, i);
                }
                item[field] = json!(public);
                merged.push(item);
            }
        }
        if let Some(e) = failure {
            if !self.fed.fail_open() || !any_ok {
                return Err(e);
            }
        }
        *self.owners.lock().unwrap() = owners;
        let mut result = match template {
            Some(Value::Object(m)) => Value::Object(m),
            _ => json!({}),
        };
        result[key] = Value::Array(merged);
        result.as_object_mut().map(|m| m.remove("nextCursor"));
        Ok(result)
    }

    /// Which target owns a name or URI, and what the target calls it.
    async fn owner(&self, list_key: &str, public: &str, is_uri: bool, cc: &CallCtx, tx: &mpsc::Sender<Value>) -> Result<(usize, String), McpError> {
        let unknown = || McpError::InvalidParams(format!("unknown {}: `{public}`", list_key.trim_end_matches('s')));
        if self.fed.prefixed {
            let split = if is_uri { self.fed.split_uri(public) } else { self.fed.split_name(public) };
            return split.map(|(i, n)| (i, n.to_string())).ok_or_else(unknown);
        }
        if self.fed.targets.len() == 1 {
            return Ok((0, public.to_string()));
        }
        let k = format!("{list_key}:{public}");
        if let Some(&i) = self.owners.lock().unwrap().get(&k) {
            return Ok((i, public.to_string()));
        }
        self.refresh_list(list_key, cc, tx).await?;
        if let Some(&i) = self.owners.lock().unwrap().get(&k) {
            return Ok((i, public.to_string()));
        }
        if !is_uri {
            return Err(unknown());
        }
        // A URI no target lists may be a template itself (`completion/complete`'s ref) or an
        // expansion of one: the target whose template matches it most specifically owns it.
        self.refresh_list("resourceTemplates", cc, tx).await?;
        let owners = self.owners.lock().unwrap();
        if let Some(&i) = owners.get(&format!("resourceTemplates:{public}")) {
            return Ok((i, public.to_string()));
        }
        owners
            .iter()
            .filter_map(|(k, &i)| k.strip_prefix("resourceTemplates:").and_then(|t| uri_template::matches(t, public)).map(|n| (n, i)))
            .max_by_key(|(n, _)| *n)
            .map(|(_, i)| (i, public.to_string()))
            .ok_or_else(unknown)
    }

    /// Lists `list_key` across the targets again, which records who owns each item.
    async fn refresh_list(&self, list_key: &str, cc: &CallCtx, tx: &mpsc::Sender<Value>) -> Result<(), McpError> {
        if let Some(&(m, key, field)) = LISTS.iter().find(|(_, key, _)| *key == list_key) {
            let msg = jsonrpc::request(json!("tollgate-owner"), m, json!({}));
            self.list(&msg, key, field, cc, tx).await?;
        }
        Ok(())
    }

    /// Sends a request to the one target it names.
    async fn route(&self, mut msg: Value, cc: &CallCtx, tx: &mpsc::Sender<Value>, verbatim: bool) -> Result<Answer, McpError> {
        let method = jsonrpc::method(&msg).to_string();
        let (pointer, list_key, is_uri) = match method.as_str() {
            "tools/call" => ("/params/name", "tools", false),
            "prompts/get" => ("/params/name", "prompts", false),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => ("/params/uri", "resources", true),
            // The target acts on `ref.type`: route and authorize by it, not by which fields exist.
            "completion/complete" => match msg.at("/params/ref/type").and_then(Value::as_str) {
                Some("ref/resource") => ("/params/ref/uri", "resources", true),
                Some("ref/prompt") => ("/params/ref/name", "prompts", false),
                _ => return Err(McpError::InvalidParams("completion/complete needs ref.type ref/prompt or ref/resource".into())),
            },
            _ if self.fed.targets.len() == 1 => ("", "", false),
            m => return Err(McpError::MethodNotFound(format!("`{m}` is not served by this gateway"))),
        };
        let (target, inner) = if pointer.is_empty() {
            (0, String::new())
        } else {
            let public = msg.at(pointer).and_then(Value::as_str).ok_or_else(|| McpError::InvalidParams(format!("{method} needs {pointer}")))?.to_string();
            self.owner(list_key, &public, is_uri, cc, tx).await?
        };
        if !pointer.is_empty() {
            // The target's own name (unprefixed); most often the same string.
            if let Some(v) = msg.at_mut(pointer).filter(|v| v.as_str() != Some(inner.as_str())) {
                *v = json!(inner);
            }
        }
        if !pointer.is_empty() && !allowed(cc, list_key, &inner, &self.fed.targets[target].name) {
            let public = msg.at(pointer).and_then(Value::as_str).unwrap_or_default();
            return Err(McpError::InvalidParams(format!("unknown {}: `{public}`", list_key.trim_end_matches('s'))));
        }
        let up = self.upstreams.get(target).and_then(Option::as_ref).ok_or_else(|| McpError::Upstream(format!("target `{}` is unavailable", self.fed.targets[target].name)))?;
        // Boxed: the upstream call's future (~4.6 KiB) would otherwise be part of every future
        // above it (handle_request, answer, post, on_request), each copied as it is created.
        let relay = self.relay(target, tx);
        let named = |e: McpError| e.at(&self.fed.targets[target].name);
        let Some(prefix) = self.fed.uri_prefix(target) else {
            return Box::pin(up.call(cc, msg, &relay, verbatim)).await.map_err(named);
        };
        let mut resp = Box::pin(up.request(cc, msg, &relay)).await.map_err(named)?;
        if let Some(Value::Array(contents)) = resp.at_mut("/result/contents") {
            for c in contents {
                if let Some(u) = c.get("uri").and_then(Value::as_str).map(|u| format!("{prefix}{u}")) {
                    c["uri"] = json!(u);
                }
            }
        }
        Ok(Answer::Message(resp))
    }
}

/// Whether the route's `mcpAuthorization` lets this request see an item of a list (`tools`,
/// `prompts`, `resources`, `resourceTemplates`), named as its target names it.
fn allowed(cc: &CallCtx, list_key: &str, name: &str, target: &str) -> bool {
    let Some(access) = &cc.access else { return true };
    let kind = match list_key {
        "tools" => "tool",
        "prompts" => "prompt",
        _ => "resource",
    };
    access.allows(kind, name, target)
}

/// Marks a request finished (and the session used) however its future ends.
struct Busy<'a>(&'a McpSession);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        *self.0.last_used.lock().unwrap() = std::time::Instant::now();
    }
}

/// A fresh per-request queue for target messages.
pub fn request_queue() -> (mpsc::Sender<Value>, mpsc::Receiver<Value>) {
    mpsc::channel(RELAY_QUEUE)
}

#[cfg(test)]
#[path = "federation_tests.rs"]
mod tests;
