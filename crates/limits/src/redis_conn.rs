//! One Redis (or Valkey) connection for a limit or budget: made on first use (inside the
//! proxy's runtime), remade in the background after a failure, every call bounded by a
//! deadline, outages logged once (start and end), the URL never logged (it may hold a
//! password).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;

/// `redis:` as written (shared by limits and budgets).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Names the counters in Redis (required): every process and route whose limit or budget
    /// has this name (and the same shape) counts in the same place, so one cap can span
    /// routes on purpose and never does by accident.
    pub name: String,
    /// Longest wait for one Redis call (Go duration; default 100ms).
    #[serde(default)]
    pub timeout: Option<String>,
    /// `failClosed` (default; 503) or `failOpen`.
    #[serde(default)]
    pub failure_mode: FailureMode,
}

/// What a request gets when Redis cannot answer in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum FailureMode {
    /// Refuse with 503.
    #[default]
    #[serde(rename = "failClosed", alias = "FailClosed")]
    FailClosed,
    /// Let the request through.
    #[serde(rename = "failOpen", alias = "FailOpen")]
    FailOpen,
}

/// Redis gave no answer in time.
#[derive(Debug)]
pub struct StoreFailure;

/// A lazily made, self-healing connection with a deadline per call.
pub struct RedisConn {
    client: redis::Client,
    manager: OnceLock<ConnectionManager>,
    timeout: Duration,
    /// The configured failure mode.
    pub failure_mode: FailureMode,
    /// `name` as configured, for logs.
    pub name: String,
    failing: AtomicBool,
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisConn({})", self.name)
    }
}

impl RedisConn {
    /// Checks the config; connects on first use.
    pub fn compile(config: &RedisConfig) -> Result<RedisConn, String> {
        let client = redis::Client::open(config.url.as_str()).map_err(|_| "redis.url is not a redis:// URL".to_string())?;
        let timeout = match &config.timeout {
            Some(t) => tollgate_core::config::types::parse_go_duration(t).map_err(|e| format!("redis.timeout {e}"))?,
            None => Duration::from_millis(100),
        };
        if config.name.is_empty() || config.name.contains(['{', '}', ':']) {
            return Err("redis.name must be non-empty, without braces or colons".into());
        }
        Ok(RedisConn {
            client,
            manager: OnceLock::new(),
            timeout,
            failure_mode: config.failure_mode,
            name: config.name.clone(),
            failing: AtomicBool::new(false),
        })
    }

    fn manager(&self) -> Option<ConnectionManager> {
        if let Some(m) = self.manager.get() {
            return Some(m.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let m = ConnectionManager::new_lazy_with_config(self.client.clone(), config).ok()?;
        Some(self.manager.get_or_init(|| m).clone())
    }

    /// Runs a script invocation within the deadline.
    pub async fn invoke<T: redis::FromRedisValue>(&self, invocation: &redis::ScriptInvocation<'_>) -> Result<T, StoreFailure> {
        let Some(mut con) = self.manager() else { return Err(self.failed("no connection")) };
        match tokio::time::timeout(self.timeout, invocation.invoke_async::<T>(&mut con)).await {
            Ok(Ok(v)) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(target: "tollgate", store = %self.name, "rate-limit store answers again");
                }
                Ok(v)
            }
            Ok(Err(e)) => Err(self.failed(&format!("{:?}", e.kind()))),
            Err(_) => Err(self.failed("timed out")),
        }
    }

    /// Logs the start of an outage once.
    fn failed(&self, why: &str) -> StoreFailure {
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(target: "tollgate", store = %self.name, reason = why, failure_mode = ?self.failure_mode, "rate-limit store (redis) unavailable");
        }
        StoreFailure
    }
}
