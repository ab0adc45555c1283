//! Client sessions: the upstream connections one MCP client holds through the gateway, and
//! the store that finds them by id, resumes them from the id after a restart, and ends idle
//! ones (`config.mcp.sessionTtl`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::client::{CallCtx, HttpClient};
use super::error::McpError;
use super::federation::Federation;
use super::token::{Codec, SessionState};
use super::upstream::{ClientHello, Relay, Upstream, RELAY_QUEUE};

/// Idle lifetime when `config.mcp.sessionTtl` is not set.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 60);
/// How long an ended session's id is still answered with 404 rather than resumed.
const TOMBSTONE_FOR: Duration = Duration::from_secs(24 * 3600);
/// Most ended ids remembered (the oldest are forgotten first).
const MAX_TOMBSTONES: usize = 100_000;
/// Most sessions (Streamable HTTP and legacy SSE) one process keeps: each may hold child
/// processes and connections, so a flood of `initialize` cannot exhaust the machine.
pub const MAX_SESSIONS: usize = 10_000;

/// A short key for an id (ids can be long).
fn id_key(id: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    h
}

/// One client session.
pub struct McpSession {
    /// The id handed to the client (empty for a session that lives for one request).
    pub id: String,
    /// The backend's targets and modes.
    pub fed: Arc<Federation>,
    /// The client's `initialize`.
    pub hello: ClientHello,
    /// Per target, the live connection (`None`: skipped under failOpen).
    pub upstreams: Vec<Option<Upstream>>,
    /// The session's own stream: messages not tied to a client request.
    pub stream_tx: mpsc::Sender<Value>,
    /// Its receiving end, held by whoever streams to the client (GET or legacy SSE).
    pub stream_rx: tokio::sync::Mutex<mpsc::Receiver<Value>>,
    /// Tasks relaying targets' server streams while the client's stream is open.
    pub stream_tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Last use, for the idle timeout.
    pub last_used: Mutex<Instant>,
    /// Whether a client stream is open (an open stream keeps the session alive).
    pub streaming: AtomicBool,
    /// Client requests being answered (a long call keeps the session alive).
    pub busy: std::sync::atomic::AtomicUsize,
    /// Which target owns an unprefixed name (`prefixMode: never`), learned from lists.
    pub owners: Mutex<HashMap<String, usize>>,
    /// Headers and timeouts of the latest request, used to end the session upstream.
    pub last_cc: Mutex<Option<CallCtx>>,
    /// Flips to true when the session ends, so its open client stream ends too.
    pub ended: tokio::sync::watch::Sender<bool>,
    /// Recent events of the client's streams, for resumption with Last-Event-ID.
    pub replay: Arc<super::replay::Replay>,
}

impl McpSession {
    /// A session with its stream, before any target is connected.
    pub fn new(id: String, fed: Arc<Federation>, hello: ClientHello, upstreams: Vec<Option<Upstream>>, stream: (mpsc::Sender<Value>, mpsc::Receiver<Value>)) -> McpSession {
        McpSession {
            id,
            fed,
            hello,
            upstreams,
            stream_tx: stream.0,
            stream_rx: tokio::sync::Mutex::new(stream.1),
            stream_tasks: Mutex::new(Vec::new()),
            last_used: Mutex::new(Instant::now()),
            streaming: AtomicBool::new(false),
            busy: std::sync::atomic::AtomicUsize::new(0),
            owners: Mutex::new(HashMap::new()),
            last_cc: Mutex::new(None),
            ended: tokio::sync::watch::Sender::new(false),
            replay: Arc::default(),
        }
    }

    /// Whether the client understands priming events (empty `data`, SEP-1699): 2025-11-25 on.
    pub fn client_resumes(&self) -> bool {
        self.hello.protocol_version.as_str() >= "2025-11-25"
    }

    /// The relay for target `i` towards `tx`.
    pub fn relay(&self, i: usize, tx: &mpsc::Sender<Value>) -> Relay {
        Relay { target: i, uri_prefix: self.fed.uri_prefix(i), tx: tx.clone() }
    }

    /// Marks the session used now.
    pub fn touch(&self, cc: &CallCtx) {
        *self.last_used.lock().unwrap() = Instant::now();
        *self.last_cc.lock().unwrap() = Some(cc.clone());
    }

    /// The id's content for this session.
    pub fn state(&self) -> SessionState {
        SessionState {
            backend: self.fed.fingerprint,
            hello: self.hello.clone(),
            targets: self.upstreams.iter().map(|u| u.as_ref().map(|u| u.saved().unwrap_or_default())).collect(),
            random: rand::random(),
        }
    }

    /// Signals the session's child process groups to die, without waiting.
    pub fn kill_children(&self) {
        for u in self.upstreams.iter().flatten() {
            if let super::upstream::Kind::Stdio(c) = &u.kind {
                c.kill_group();
            }
        }
    }

    /// Stops the session's child processes (the gateway is going away).
    pub async fn stop_children(&self) {
        for u in self.upstreams.iter().flatten() {
            if let super::upstream::Kind::Stdio(c) = &u.kind {
                c.close().await;
            }
        }
    }

    /// Ends every upstream session (HTTP DELETE, SSE stream closed, child killed).
    pub async fn close(&self, cc: &CallCtx) {
        self.ended.send_replace(true);
        for t in self.stream_tasks.lock().unwrap().drain(..) {
            t.abort();
        }
        let closes = self.upstreams.iter().flatten().map(|u| u.close(cc));
        futures::future::join_all(closes).await;
    }
}

/// Every live session of the process, by id. Lives across config reloads (sessions keep
/// the targets they started with).
pub struct SessionStore {
    codec: Codec,
    ttl: Duration,
    /// The connector every MCP exchange uses.
    pub client: Arc<HttpClient>,
    /// Keyed by the sealed session id: a fast hash (randomly seeded), since SipHash over a
    /// ~100-byte id was ~0.9k instructions of every MCP request; a client can only look up,
    /// and every key inserted is an id the gateway made.
    live: Mutex<HashMap<String, Arc<McpSession>, foldhash::fast::RandomState>>,
    ended: Mutex<HashMap<u64, Instant>>,
    /// Legacy SSE clients by the id in their message URL.
    pub legacy: Mutex<HashMap<String, Arc<super::legacy::LegacyClient>>>,
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionStore {{ ttl: {:?}, {:?} }}", self.ttl, self.codec)
    }
}

impl SessionStore {
    /// A store sealing ids with `key` (hex) and expiring sessions idle for `ttl`.
    pub fn new(key: &str, ttl: Option<Duration>) -> Result<SessionStore, String> {
        Ok(SessionStore {
            codec: Codec::new(key)?,
            ttl: ttl.unwrap_or(DEFAULT_TTL),
            client: Arc::new(HttpClient::default()),
            live: Mutex::new(HashMap::default()),
            ended: Mutex::new(HashMap::new()),
            legacy: Mutex::new(HashMap::new()),
        })
    }

    /// The id for a new session.
    pub fn new_id(&self, state: &SessionState) -> String {
        self.codec.encode(state)
    }

    /// Registers a session.
    pub fn insert(&self, s: Arc<McpSession>) {
        self.live.lock().unwrap().insert(s.id.clone(), s);
    }

    /// Runs for the life of the process (a background service): ends idle sessions until the
    /// process starts to stop. The end of life is [`SessionStore::stop_children`]'s, called by
    /// the process's drain once connections are done.
    pub async fn maintain(&self, mut shutdown: tokio::sync::watch::Receiver<bool>, metrics: &tollgate_core::telemetry::metrics::Metrics) {
        let every = (self.ttl / 3).clamp(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {
                    self.reap();
                    metrics.set_mcp_sessions(self.live.lock().unwrap().len(), self.legacy.lock().unwrap().len());
                }
                _ = shutdown.changed() => break,
            }
        }
    }

    /// Stops every stdio child (their whole process groups) at the end of the drain: until
    /// then the old process still answers its open connections. Streamable HTTP sessions are
    /// left open at their targets: their ids resume on the next process (upgrade, restart).
    pub async fn stop_children(&self) {
        let mut sessions: Vec<Arc<McpSession>> = self.live.lock().unwrap().values().cloned().collect();
        let legacy: Vec<_> = self.legacy.lock().unwrap().values().cloned().collect();
        for c in legacy {
            let s = c.session.lock().await.clone();
            sessions.extend(s);
        }
        // Every group at once (no waiting), then reap them together.
        for s in &sessions {
            s.kill_children();
        }
        futures::future::join_all(sessions.iter().map(|s| s.stop_children())).await;
    }

    fn reap(&self) {
        let now = Instant::now();
        let expired: Vec<Arc<McpSession>> = {
            let mut live = self.live.lock().unwrap();
            let ids: Vec<String> = live
                .iter()
                .filter(|(_, s)| {
                    !s.streaming.load(Ordering::Relaxed) && s.busy.load(Ordering::Relaxed) == 0 && now.duration_since(*s.last_used.lock().unwrap()) > self.ttl
                })
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| live.remove(id)).collect()
        };
        let mut ended = self.ended.lock().unwrap();
        ended.retain(|_, at| now.duration_since(*at) < TOMBSTONE_FOR);
        for s in expired {
            tracing::info!("MCP session expired after {:?} idle", self.ttl);
            ended.insert(id_key(&s.id), now);
            let cc = s.last_cc.lock().unwrap().clone();
            if let Some(cc) = cc {
                tokio::spawn(async move { s.close(&cc).await });
            }
        }
    }

    /// A live session.
    pub fn get(&self, id: &str) -> Option<Arc<McpSession>> {
        self.live.lock().unwrap().get(id).cloned()
    }

    /// Ends a session now (client DELETE, or a target lost it).
    pub fn remove(&self, id: &str) -> Option<Arc<McpSession>> {
        let mut ended = self.ended.lock().unwrap();
        if ended.len() >= MAX_TOMBSTONES {
            let oldest = ended.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k);
            oldest.map(|k| ended.remove(&k));
        }
        ended.insert(id_key(id), Instant::now());
        drop(ended);
        self.live.lock().unwrap().remove(id)
    }

    /// Whether another session may start.
    pub fn has_room(&self) -> bool {
        self.live.lock().unwrap().len() + self.legacy.lock().unwrap().len() < MAX_SESSIONS
    }

    /// Ends, at its targets, a session this process does not hold (made by another process):
    /// HTTP targets get a DELETE; nothing is started just to be stopped.
    pub async fn end_elsewhere(&self, id: &str, fed: &Arc<Federation>, cc: &CallCtx) -> bool {
        let Some(state) = self.codec.decode(id).filter(|s| s.backend == fed.fingerprint && s.targets.len() == fed.targets.len()) else {
            return false;
        };
        if self.ended.lock().unwrap().contains_key(&id_key(id)) {
            return false;
        }
        self.remove(id);
        for (t, saved) in fed.targets.iter().zip(&state.targets) {
            if let (super::target::TargetKind::Http(origin, path), Some(saved)) = (&t.kind, saved) {
                if saved.session.is_some() {
                    let up = super::upstream::http::HttpUpstream::new(origin.clone(), path.clone(), saved.session.clone(), saved.version.clone());
                    up.close(&t.transport.apply(cc)).await;
                }
            }
        }
        true
    }

    /// Finds a session, or rebuilds it from its id (another process made it). `Err` when the
    /// id is unknown, ended, or made for other targets.
    pub async fn find_or_resume(self: &Arc<Self>, id: &str, fed: &Arc<Federation>, cc: &CallCtx) -> Result<Arc<McpSession>, McpError> {
        if let Some(s) = self.get(id) {
            // An id is honoured only by the backend that made it.
            return if s.fed.fingerprint == fed.fingerprint { Ok(s) } else { Err(McpError::SessionGone) };
        }
        if self.ended.lock().unwrap().contains_key(&id_key(id)) {
            return Err(McpError::SessionGone);
        }
        if !self.has_room() {
            return Err(McpError::Upstream(format!("too many MCP sessions (limit {MAX_SESSIONS})")));
        }
        let state = self.codec.decode(id).ok_or(McpError::SessionGone)?;
        if state.backend != fed.fingerprint || state.targets.len() != fed.targets.len() {
            return Err(McpError::SessionGone);
        }
        let stream = mpsc::channel(RELAY_QUEUE);
        let mut upstreams = Vec::new();
        for (i, saved) in state.targets.iter().enumerate() {
            let Some(saved) = saved else {
                upstreams.push(None);
                continue;
            };
            let relay = Relay { target: i, uri_prefix: fed.uri_prefix(i), tx: stream.0.clone() };
            // Boxed: resuming is rare and its future (~5.5 KiB) would otherwise size every
            // request's `find`, copied as each request's future is built.
            match Box::pin(Upstream::resume(&fed.targets[i], cc, &state.hello, Some(saved), &relay)).await {
                Ok(u) => upstreams.push(Some(u)),
                Err(e) if fed.fail_open() => {
                    log::warn!("resuming MCP target `{}` failed, skipped: {e}", fed.targets[i].name);
                    upstreams.push(None);
                }
                Err(e) => return Err(e.at(&fed.targets[i].name)),
            }
        }
        let session = Arc::new(McpSession::new(id.to_string(), fed.clone(), state.hello, upstreams, stream));
        tracing::info!("MCP session resumed from its id");
        // Two requests may race to resume: keep the first.
        let kept = self.live.lock().unwrap().entry(id.to_string()).or_insert(session).clone();
        Ok(kept)
    }
}

