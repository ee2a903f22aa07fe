//! Outbound HTTP through the host (a connector's `http.send`, with the grant check, the
//! guarded resolver and a fresh instance per call) against the same request made natively
//! with reqwest, both to a server on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::Router;
use axum::routing::get;
use cordon_host::secrets::NoSecrets;
use cordon_host::{CallInfo, Connection, ConnectionConfig, Grant, Runtime, RuntimeConfig};
use serde_json::json;
use tokio::sync::Notify;

use crate::Options;
use crate::stats::{Stats, Table, process_cpu, ratio, time};

/// 1 MiB of response body.
pub const LARGE: usize = 1 << 20;

/// The loopback server: `/small` (a short JSON answer), `/large` (1 MiB), and `/hold`, which
/// answers only once `release` is notified, so callers can be kept in flight.
pub struct Server {
    pub port: u16,
    pub held: Arc<AtomicUsize>,
    pub release: Arc<Notify>,
}

pub async fn serve() -> anyhow::Result<Server> {
    let held = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let large = Arc::new(vec![b'x'; LARGE]);
    let app = Router::new()
        .route(
            "/small",
            get(|| async { axum::Json(json!({"ok": true, "id": 42})) }),
        )
        .route(
            "/large",
            get(move || {
                let large = large.clone();
                async move { (*large).clone() }
            }),
        )
        .route(
            "/hold",
            get({
                let held = held.clone();
                let release = release.clone();
                move || async move {
                    let released = release.notified();
                    held.fetch_add(1, Ordering::SeqCst);
                    released.await;
                    "released"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Server { port, held, release })
}

/// The benchmark-only connector (`tests/fixtures/bench`), built for wasm32-wasip2 on first use.
pub fn bench_connector_bytes() -> anyhow::Result<Vec<u8>> {
    let dir = cordon_guest_build::build_guests_quietly(&crate::workspace_root(), &["cordon-fixture-bench"]);
    Ok(std::fs::read(dir.join("cordon_fixture_bench.wasm"))?)
}

/// A grant of the loopback server's port and nothing else.
pub fn loopback_grant(port: u16) -> anyhow::Result<Grant> {
    Ok(serde_json::from_value(
        json!({ "hosts": [format!("http://127.0.0.1:{port}")] }),
    )?)
}

/// A connection of the bench connector granted the loopback server's port.
pub async fn connect(runtime: &Runtime, port: u16) -> anyhow::Result<Connection> {
    let connector = runtime.load_bytes(&bench_connector_bytes()?, "bench").await?;
    Ok(connector.connect(ConnectionConfig {
        name: "bench".parse()?,
        parameters: Default::default(),
        grant: loopback_grant(port)?,
        secrets: Arc::new(NoSecrets),
    })?)
}

/// The loopback server, the bench connector's connection to it, and a native client: what
/// both HTTP sections start from.
async fn loopback() -> anyhow::Result<(Server, Connection, reqwest::Client)> {
    let server = serve().await?;
    let runtime = Runtime::new(RuntimeConfig {
        max_concurrent_instances: 64,
        ..RuntimeConfig::default()
    })?;
    let connection = connect(&runtime, server.port).await?;
    let native = reqwest::Client::builder().no_proxy().build()?;
    Ok((server, connection, native))
}

pub async fn run(options: &Options) -> anyhow::Result<()> {
    let (server, connection, native) = loopback().await?;
    let table = Table::start(
        "Outbound HTTP on loopback: through the host against native reqwest",
        &["measurement", "p50", "p99", "ratio to native (p50)", "runs"],
    );
    for (path, size, iterations) in [
        ("small", 10, options.iterations(5_000)),
        ("large", LARGE, options.iterations(500)),
    ] {
        let url = format!("http://127.0.0.1:{}/{path}", server.port);
        let input = json!({ "url": url });
        let call = CallInfo::default();
        let fetched = |output: &serde_json::Value| {
            anyhow::ensure!(
                output["status"] == 200 && output["bytes"].as_u64() >= Some(size as u64),
                "unexpected fetch result {output}"
            );
            Ok(())
        };
        // The three ways take turns, one request each, so the machine's drift during the row
        // (large on this VM) falls on all of them alike. A reused instance may make at most
        // `requests_per_invocation` requests, so a new one is made (untimed) every 200.
        let (mut native_samples, mut fresh_samples, mut reused_samples) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut reused = connection.reused_instance().await?;
        for i in 0..iterations + 20 {
            let started = Instant::now();
            let body = native.get(&url).send().await?.error_for_status()?.bytes().await?;
            let native_time = started.elapsed();
            anyhow::ensure!(body.len() >= size, "short body from {url}");

            let started = Instant::now();
            let output = connection.invoke("fetch", &input, &call).await.result?;
            let fresh_time = started.elapsed();
            fetched(&output)?;

            if i % 200 == 0 {
                reused = connection.reused_instance().await?;
            }
            let started = Instant::now();
            let output = reused.invoke("fetch", &input).await?;
            let reused_time = started.elapsed();
            fetched(&output)?;

            if i >= 20 {
                native_samples.push(native_time);
                fresh_samples.push(fresh_time);
                reused_samples.push(reused_time);
            }
        }
        let base = Stats::of(native_samples);
        let label = if size == LARGE { "1 MiB" } else { "small" };
        table.timing(&format!("native reqwest, GET {label} body"), base, "1.00×".into());
        let fresh = Stats::of(fresh_samples);
        table.timing(
            &format!("**cordon: a connector's request, fresh instance, {label} body**"),
            fresh,
            ratio(fresh.p50, base.p50),
        );
        let reused = Stats::of(reused_samples);
        table.timing(
            &format!("cordon: the same from one reused instance (for comparison), {label} body"),
            reused,
            ratio(reused.p50, base.p50),
        );
    }
    Ok(())
}

/// The ways `alone` measures, one block each.
#[derive(Clone, Copy)]
enum Way {
    Native,
    FreshInstance,
    ReusedInstance,
}

/// The names `--way` takes, in the order of `Way::ALL`.
pub const WAYS: [&str; 3] = ["native", "fresh", "reused"];

impl Way {
    const ALL: [Way; 3] = [Way::Native, Way::FreshInstance, Way::ReusedInstance];

    fn name(self) -> &'static str {
        match self {
            Way::Native => WAYS[0],
            Way::FreshInstance => WAYS[1],
            Way::ReusedInstance => WAYS[2],
        }
    }

    fn label(self) -> &'static str {
        match self {
            Way::Native => "native reqwest",
            Way::FreshInstance => "cordon, fresh instance",
            Way::ReusedInstance => "cordon, one reused instance",
        }
    }
}

/// One way at a time (`--only http-alone`, not part of the default run): native reqwest, a
/// fresh instance per request, and one reused instance, each for a block of small-body
/// requests, with the process's CPU time per request beside the latency. Where the rows of
/// `run` take turns to share the VM's drift, these blocks show what each way costs the whole
/// process when it is the only thing running: on a 2-core machine with the server in the
/// same process, CPU spent anywhere (the spare thread included) shows up as latency.
pub async fn alone(options: &Options) -> anyhow::Result<()> {
    let (server, connection, native) = loopback().await?;
    let url = format!("http://127.0.0.1:{}/small", server.port);
    let input = json!({ "url": url });
    let call = CallInfo::default();
    let iterations = options.iterations(20_000);
    let table = Table::start(
        "Outbound HTTP on loopback, small body, one way at a time",
        &["measurement", "p50", "p99", "process CPU per request", "runs"],
    );
    let chosen = Way::ALL
        .into_iter()
        .filter(|way| options.way.as_deref().is_none_or(|name| name == way.name()));
    for way in chosen {
        let mut reused = connection.reused_instance().await?;
        let mut samples = Vec::with_capacity(iterations);
        let cpu_before = process_cpu()?;
        for i in 0..iterations {
            let started = Instant::now();
            match way {
                Way::Native => {
                    native.get(&url).send().await?.error_for_status()?.bytes().await?;
                }
                Way::FreshInstance => {
                    connection.invoke("fetch", &input, &call).await.result?;
                }
                Way::ReusedInstance => {
                    // A reused instance may make at most `requests_per_invocation` requests.
                    if i % 200 == 199 {
                        reused = connection.reused_instance().await?;
                    }
                    reused.invoke("fetch", &input).await?;
                }
            }
            samples.push(started.elapsed());
        }
        let cpu = process_cpu()?.saturating_sub(cpu_before) / u32::try_from(iterations)?;
        let stats = Stats::of(samples);
        table.row(&[
            way.label().to_owned(),
            time(stats.p50),
            time(stats.p99),
            time(cpu),
            stats.runs.to_string(),
        ]);
    }
    Ok(())
}
