//! The process: load the config, build one Pingora proxy service per bind, and run.
//! Pingora's server handles signals: SIGTERM drains, SIGINT exits, SIGQUIT hands the
//! listening sockets to a new process started with `-u`.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::apps::HttpServerOptions;
use pingora::listeners::{L4BufferSettings, ListenerConfig, TcpSocketOptions};
use pingora::proxy::http_proxy;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;

use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::admin::{self, AdminApp, ReadinessApp, StatsApp};
use crate::cli::Cli;
use crate::logging::LogControl;
use crate::reload::ConfigWatcher;
use crate::telemetry::metrics::Metrics;
use crate::config::{self, LocalConfig};
use crate::downstream::admission::{self, AcceptFilter, Admission};
use crate::downstream::drain::{Drain, Trim};
use crate::downstream::{ConnLimits, Gate};
use crate::proxy::TollgateProxy;
use crate::runtime::{self, Gateway};
use crate::telemetry::Telemetry;

/// Default drain time on shutdown and upgrade (agentgateway's `connectionTerminationDeadline`).
const DEFAULT_GRACE_SECONDS: u64 = 5;

/// A loaded config: parsed, compiled, and dumped for `/config_dump`.
pub struct Loaded {
    /// The parsed file.
    pub config: LocalConfig,
    /// The runtime tables.
    pub gateway: Gateway,
    /// State that outlives reloads (MCP sessions).
    pub shared: runtime::Shared,
    /// The effective config as redacted JSON.
    pub dump: serde_json::Value,
}

/// The MCP family's upkeep (session expiry), as a Pingora background service.
struct McpUpkeep {
    mcp: Arc<dyn crate::family::McpFamily>,
    metrics: Arc<crate::telemetry::metrics::Metrics>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for McpUpkeep {
    async fn start(&self, shutdown: pingora::server::ShutdownWatch) {
        self.mcp.maintain(shutdown, self.metrics.clone()).await;
    }
}

/// Loads and compiles the config named on the command line.
pub fn load(cli: &Cli) -> Result<Loaded, String> {
    let (parsed, text) = match (&cli.file, &cli.config) {
        (Some(f), _) => (config::load_file(f), std::fs::read_to_string(f).unwrap_or_default()),
        (None, Some(inline)) => (config::parse_str(inline, "<inline>"), inline.clone()),
        (None, None) => return Err("no config: pass -f FILE (see --help)".into()),
    };
    let parsed = parsed.map_err(|e| e.to_string())?;
    let name = cli.file.as_ref().map(|f| f.display().to_string()).unwrap_or_else(|| "<inline>".into());
    // `--validate-only` makes no files: its session key is a throwaway.
    let key_dir = (!cli.validate_only).then_some(cli.runtime_dir.as_path());
    let shared = runtime::Shared::from_config(&parsed, key_dir).map_err(|e| format!("{name}: {e}"))?;
    let gateway = runtime::compile_with(&parsed, &shared).map_err(|e| format!("{name}: {e}"))?;
    let expanded = config::expand_env(&text, &name).map_err(|e| e.to_string())?;
    Ok(Loaded { config: parsed, gateway, shared, dump: admin::dump::dump(&expanded) })
}

/// Pingora's server settings from the config and the command line.
pub fn server_conf(config: &LocalConfig, runtime_dir: &Path) -> Result<ServerConf, String> {
    let grace = config.config.connection_termination_deadline.map(|d| d.0.as_secs()).unwrap_or(DEFAULT_GRACE_SECONDS);
    std::fs::create_dir_all(runtime_dir).map_err(|e| format!("cannot create runtime dir {}: {e}", runtime_dir.display()))?;
    let threads = worker_threads(config)?;
    Ok(ServerConf {
        threads,
        // One worker has nothing to steal from: Pingora's no-steal flavour runs it on a
        // single-threaded tokio runtime, without the work-stealing scheduler's bookkeeping
        // (~24% of a completion's CPU at 32 connections; bench/README). More workers keep
        // stealing, which balances connections between them.
        work_stealing: threads > 1,
        grace_period_seconds: Some(grace),
        graceful_shutdown_timeout_seconds: Some(grace.max(1)),
        pid_file: runtime_dir.join("tollgate.pid").display().to_string(),
        upgrade_sock: runtime_dir.join("upgrade.sock").display().to_string(),
        error_log: Some(runtime_dir.join("error.log").display().to_string()),
        ..ServerConf::default()
    })
}

/// `workerThreads`: a number, or `"N%"` of the CPUs; default all CPUs.
fn worker_threads(config: &LocalConfig) -> Result<usize, String> {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let Some(v) = &config.config.worker_threads else { return Ok(cpus) };
    let bad = || format!("config.workerThreads: expected a number or \"N%\", got {v:?}");
    match v {
        serde_yaml_ng::Value::Number(n) => n.as_u64().filter(|n| *n > 0).map(|n| n as usize).ok_or_else(bad),
        serde_yaml_ng::Value::String(s) => {
            let pct: f64 = s.strip_suffix('%').and_then(|p| p.trim().parse().ok()).ok_or_else(bad)?;
            Ok(((cpus as f64 * pct / 100.0).round() as usize).max(1))
        }
        _ => Err(bad()),
    }
}

/// Sends SIGQUIT to the running tollgate shortly after this process starts waiting for its
/// sockets: the old process hands them over, keeps serving what it has, and exits.
fn signal_running(pid_file: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(pid_file).map_err(|e| format!("--take-over: cannot read {}: {e}", pid_file.display()))?;
    let pid: i32 = text.trim().parse().map_err(|_| format!("--take-over: {} holds no pid", pid_file.display()))?;
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return Err(format!("--take-over: no running tollgate with pid {pid}"));
    }
    std::thread::spawn(move || {
        // Give bootstrap time to start listening on the upgrade socket; the old process
        // retries its connection for 5 s anyway.
        std::thread::sleep(std::time::Duration::from_millis(300));
        // SAFETY: as above, with SIGQUIT: Pingora's graceful upgrade signal.
        unsafe {
            libc::kill(pid, libc::SIGQUIT);
        }
    });
    Ok(())
}

/// Admin, stats and readiness endpoints, each on its configured address (or `off`).
fn add_operator_services(
    server: &mut Server,
    config: &LocalConfig,
    v6: bool,
    dump: serde_json::Value,
    logging: Arc<LogControl>,
    metrics: Arc<Metrics>,
) -> Result<(), String> {
    let c = &config.config;
    let default_any = |port: u16| if v6 { format!("[::]:{port}") } else { format!("0.0.0.0:{port}") };
    if let Some(addr) = admin::parse_addr(c.admin_addr.as_deref(), "localhost:15000", v6).map_err(|e| format!("config.adminAddr: {e}"))? {
        let mut s = Service::new("admin".into(), AdminApp { config_dump: Arc::new(dump), logging });
        s.add_tcp(&addr);
        server.add_service(s);
    }
    if let Some(addr) = admin::parse_addr(c.stats_addr.as_deref(), &default_any(15020), v6).map_err(|e| format!("config.statsAddr: {e}"))? {
        let mut s = Service::new("stats".into(), StatsApp { metrics });
        s.add_tcp(&addr);
        server.add_service(s);
    }
    if let Some(addr) = admin::parse_addr(c.readiness_addr.as_deref(), &default_any(15021), v6).map_err(|e| format!("config.readinessAddr: {e}"))? {
        let ports = config.binds.iter().map(|b| b.port).collect();
        let mut s = Service::new("readiness".into(), ReadinessApp::new(ports));
        s.add_tcp(&addr);
        server.add_service(s);
    }
    Ok(())
}

/// Whether this host can listen on IPv6 (then `[::]` also accepts IPv4).
fn ipv6_available() -> bool {
    std::net::TcpListener::bind("[::]:0").is_ok()
}

/// Runs the gateway until it is told to stop. Returns only on start-up failure.
pub fn run(cli: Cli, loaded: Loaded, logging: Arc<LogControl>) -> Result<(), String> {
    let Loaded { config, gateway, shared: runtime_shared, dump } = loaded;
    let conf = server_conf(&config, &cli.runtime_dir)?;
    let pid_file = cli.runtime_dir.join("tollgate.pid");
    let upgrade = cli.upgrade || cli.take_over;
    if cli.take_over {
        signal_running(&pid_file)?;
    }
    let opt = Opt { upgrade, daemon: cli.daemon, nocapture: false, test: false, conf: None };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    if !cli.daemon {
        // Pingora writes the pid file only when daemonizing; `--take-over` needs it either way.
        let _ = std::fs::write(&pid_file, std::process::id().to_string());
    }
    let shared = Arc::new(ArcSwap::from_pointee(gateway));
    let telemetry = Arc::new(Telemetry::new(&config.config)?);
    let metrics = telemetry.metrics.clone();
    let v6 = config.config.enable_ipv6.unwrap_or(true) && ipv6_available();
    let admission = Admission::new(cli.max_connections.unwrap_or_else(admission::default_cap));
    let limits = ConnLimits { header_timeout: cli.header_timeout, body_timeout: cli.body_timeout };
    tracing::info!(target: "tollgate", max_connections = admission.cap(), "connection limit");
    for bind in &config.binds {
        let proxy = TollgateProxy {
            port: bind.port,
            gateway: shared.clone(),
            telemetry: telemetry.clone(),
        };
        let mut options = HttpServerOptions::default();
        options.h2c = true;
        // Idle HTTP/2 connections are bounded like idle HTTP/1 ones.
        options.h2_idle_timeout = Some(shared.load().frontend.http1_idle_timeout);
        let mut http = http_proxy(&server.configuration, proxy);
        http.server_options = Some(options);
        let gate = Gate { proxy: Arc::new(http), admission: admission.clone(), limits, gateway: shared.clone(), port: bind.port };
        let mut service = Service::new(format!("bind {}", bind.port), gate);
        service.set_connection_filter(Arc::new(AcceptFilter(admission.clone())));
        // No L4 read buffer: tollgate reads each request head itself, and Pingora's default
        // 64 KiB per connection would be what an idle or slowloris connection costs.
        let buffers = L4BufferSettings::default().read(0);
        let listener = if v6 {
            let mut sock = TcpSocketOptions::default();
            sock.ipv6_only = Some(false);
            ListenerConfig::tcp(format!("[::]:{}", bind.port)).tcp_socket_options(sock)
        } else {
            ListenerConfig::tcp(format!("0.0.0.0:{}", bind.port))
        };
        service.add_listener(listener.l4_buffer(buffers));
        server.add_service(service);
        tracing::info!(target: "tollgate", port = bind.port, "listening");
    }
    let grace = config.config.connection_termination_deadline.map_or(std::time::Duration::from_secs(DEFAULT_GRACE_SECONDS), |d| d.0);
    let min = config.config.connection_min_termination_deadline.map_or(std::time::Duration::ZERO, |d| d.0);
    let drain = Drain { admission: admission.clone(), mcp: runtime_shared.mcp.clone(), min, grace, telemetry: telemetry.clone() };
    add_operator_services(&mut server, &config, v6, dump, logging, metrics.clone())?;
    if let Some(mcp) = runtime_shared.mcp.clone() {
        server.add_service(background_service("mcp sessions", McpUpkeep { mcp, metrics: metrics.clone() }));
    }
    server.add_service(background_service("drain", drain));
    server.add_service(background_service("trim", Trim { admission: admission.clone() }));
    if let Some(path) = &cli.file {
        let watcher = ConfigWatcher { path: path.clone(), gateway: shared.clone(), shared: runtime_shared.clone() };
        server.add_service(background_service("config watcher", watcher));
    }
    server.run_forever()
}
