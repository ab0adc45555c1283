//! Stdio targets: a child process per client session speaking newline-delimited JSON-RPC
//! on stdin/stdout. The child runs in its own process group, and the whole group dies with
//! the session (launchers such as `npx` or `uvx` start the real server as a grandchild).

use std::process::Stdio;
use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::dispatch::Dispatcher;
use super::Relay;
use tollgate_core::config::mcp::StdioSpec;
use crate::client::CallCtx;
use crate::error::McpError;

/// Longest line accepted from a child.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// One child process.
pub struct StdioUpstream {
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
    /// The child's process group while the child is not reaped (0 after: the id may be reused).
    pgid: std::sync::atomic::AtomicI32,
    /// Pending requests and where stray messages go.
    pub dispatch: Arc<Dispatcher>,
    reader: JoinHandle<()>,
}

impl StdioUpstream {
    /// Starts the child.
    pub fn spawn(spec: &StdioSpec, relay: &Relay) -> Result<StdioUpstream, McpError> {
        let mut cmd = Command::new(&spec.cmd);
        cmd.args(&spec.args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).kill_on_drop(true).process_group(0);
        if spec.clear_env {
            cmd.env_clear();
        }
        cmd.envs(&spec.env);
        let mut child = cmd.spawn().map_err(|e| McpError::Upstream(format!("cannot start `{}`: {e}", spec.cmd)))?;
        let stdin = child.stdin.take().ok_or_else(|| McpError::Internal("no stdin".into()))?;
        let stdout = child.stdout.take().ok_or_else(|| McpError::Internal("no stdout".into()))?;
        let pgid = std::sync::atomic::AtomicI32::new(child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0));
        let dispatch = Arc::new(Dispatcher::default());
        dispatch.set_fallback(Some(relay.clone()));
        let d = dispatch.clone();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                // At most MAX_LINE + 1 bytes per line: a child that never ends a line cannot grow memory.
                match AsyncReadExt::take(&mut lines, MAX_LINE as u64 + 1).read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.len() > MAX_LINE => break,
                    Ok(_) => {
                        if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                            d.dispatch(v);
                        }
                    }
                }
            }
            d.close_all();
        });
        Ok(StdioUpstream { stdin: Mutex::new(Some(stdin)), child: Mutex::new(child), pgid, dispatch, reader })
    }

    async fn write(&self, msg: &Value, wait: std::time::Duration) -> Result<(), McpError> {
        let mut line = msg.to_string().into_bytes();
        line.push(b'\n');
        let write = async {
            let mut stdin = self.stdin.lock().await;
            let stdin = stdin.as_mut().ok_or_else(|| McpError::Upstream("the process was stopped".into()))?;
            stdin.write_all(&line).await.map_err(|e| McpError::Upstream(format!("writing to the process: {e}")))?;
            stdin.flush().await.map_err(|e| McpError::Upstream(format!("writing to the process: {e}")))
        };
        tokio::time::timeout(wait, write).await.map_err(|_| McpError::Upstream("the process stopped reading its input".into()))?
    }

    /// Kills the child's whole process group now (launchers leave helpers in it).
    pub fn kill_group(&self) {
        let pgid = self.pgid.load(std::sync::atomic::Ordering::SeqCst);
        if pgid > 0 {
            // SAFETY: signalling a process group we created and have not reaped; no memory involved.
            unsafe { libc::killpg(pgid, libc::SIGKILL) };
        }
    }

    /// Sends a request and waits for its answer.
    pub async fn request(&self, cc: &CallCtx, mut msg: Value, relay: &Relay) -> Result<Value, McpError> {
        if self.reader.is_finished() {
            return Err(McpError::Upstream("the process exited".into()));
        }
        let pending = self.dispatch.register(&mut msg, relay);
        self.write(&msg, cc.step()).await?;
        pending.wait(cc.step()).await
    }

    /// Sends a notification or a response.
    pub async fn notify(&self, cc: &CallCtx, mut msg: Value) -> Result<(), McpError> {
        self.dispatch.translate_cancel(&mut msg);
        self.write(&msg, cc.step()).await
    }

    /// Closes its input, kills its process group and reaps it.
    pub async fn close(&self) {
        self.reader.abort();
        self.dispatch.close_all();
        // Kill first: a writer blocked on a child that stopped reading then fails and lets go.
        self.kill_group();
        self.stdin.lock().await.take();
        let mut child = self.child.lock().await;
        let _ = child.start_kill();
        if let Ok(Ok(_)) = tokio::time::timeout(std::time::Duration::from_secs(5), child.wait()).await {
            self.pgid.store(0, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl Drop for StdioUpstream {
    fn drop(&mut self) {
        self.reader.abort();
        self.kill_group();
    }
}
