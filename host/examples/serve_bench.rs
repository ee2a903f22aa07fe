//! Measures `cordon serve`'s request trigger: requests per second and latency for a workflow of
//! three built-in actions with durable history, driven by a load generator on loopback, and
//! prints the table in BENCHMARKS.md.
//!
//! Run: `cargo run -p cordon-host --example serve_bench` (add `-- --quick` for fewer requests).
//!
//! The server is the same router `cordon serve` runs, on its own multi-threaded tokio runtime;
//! the load generator is a reqwest client on another runtime in the same process, keeping a
//! fixed number of requests in flight over keep-alive connections. Both share the machine's
//! cores, as they would with a generator in another process. The first row measures the
//! generator against an endpoint that does nothing, which is the ceiling this machine sets on
//! any server measured this way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cordon_host::db::SqliteDb;
use cordon_host::server::{Keys, ServerConfig, callback_url, router};
use cordon_host::workflow::project::Project;
use cordon_host::workflow::{Engine, EngineOptions};
use cordon_host::{Runtime, RuntimeConfig};
use serde_json::json;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// The request-triggered workflow: two Composes and a Response, all built in. The Response
/// makes the caller wait for the run, so a request's latency covers the whole durable run.
fn write_project(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::write(dir.join("connections.json"), "{}")?;
    std::fs::create_dir_all(dir.join("order"))?;
    let workflow = json!({"kind": "Stateful", "definition": {
    "triggers": {"manual": {"type": "Request", "kind": "Http"}},
    "actions": {
        "Total": {"type": "Compose", "inputs": "@mul(triggerBody()?['quantity'], triggerBody()?['price'])"},
        "Summary": {"type": "Compose", "inputs": {"id": "@triggerBody()?['id']", "total": "@outputs('Total')"},
                    "runAfter": {"Total": ["Succeeded"]}},
        "Reply": {"type": "Response", "inputs": {"statusCode": 200, "body": "@outputs('Summary')"},
                  "runAfter": {"Summary": ["Succeeded"]}}
    }}});
    std::fs::write(dir.join("order/workflow.json"), workflow.to_string())?;
    Ok(())
}

/// Sends `total` POSTs to `url`, `in_flight` at a time, and returns each one's latency and the
/// wall time of the whole burst. Every response must be a 200.
async fn load(url: &str, total: usize, in_flight: usize) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(in_flight)
        .build()?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (client, url, next) = (client.clone(), url.to_owned(), next.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(r#"{"id": "A-17", "quantity": 3, "price": 12.5}"#)
                        .send()
                        .await?;
                    let status = response.status();
                    let body = response.bytes().await?;
                    anyhow::ensure!(status == 200, "{status}: {}", String::from_utf8_lossy(&body));
                    samples.push(sent.elapsed());
                }
                anyhow::Ok(samples)
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(total);
    for worker in workers {
        samples.extend(worker.await??);
    }
    Ok((samples, started.elapsed()))
}

fn row(label: &str, mut samples: Vec<Duration>, elapsed: Duration) {
    let n = samples.len();
    println!(
        "| {label} | {:.0} | {} | {} | {n} |",
        n as f64 / elapsed.as_secs_f64(),
        ms(percentile(&mut samples, 0.5)),
        ms(percentile(&mut samples, 0.99)),
    );
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let total = if quick { 2_000 } else { 20_000 };
    let in_flight = 64;
    let dir = tempfile::tempdir()?;
    write_project(dir.path())?;

    let server = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (durable_url, floor_url) = server.block_on(async {
        let project = Project::open(dir.path())?;
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: Some(dir.path().join("cache")),
            ..RuntimeConfig::default()
        })?;
        let db = Arc::new(SqliteDb::open(&dir.path().join("history.db"))?);
        let engine = Engine::open(&project, &runtime, EngineOptions::new(db)).await?;
        let keys = Keys::for_project(&project)?;
        let trigger_key = keys.trigger.clone();
        let app = router(engine, keys, ServerConfig::default()).route(
            "/floor",
            axum::routing::post(|_body: axum::body::Bytes| async { "{}" }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        // The server's own listener (read timeout, connection cap), as `cordon serve` runs it.
        tokio::spawn(async move {
            cordon_host::server::serve(listener, app, &ServerConfig::default(), std::future::pending()).await
        });
        anyhow::Ok((
            callback_url(&base, &trigger_key, "order", "manual", None),
            format!("{base}/floor"),
        ))
    })?;

    let generator = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    generator.block_on(async {
        // Warm up: connections, SQLite pages, allocator.
        load(&durable_url, 500, in_flight).await?;
        load(&floor_url, 500, in_flight).await?;

        println!("| measurement ({in_flight} requests in flight) | requests/s | p50 | p99 | requests |");
        println!("|---|---|---|---|---|");
        let (samples, elapsed) = load(&floor_url, total, in_flight).await?;
        row(
            "empty axum handler (the load generator's ceiling)",
            samples,
            elapsed,
        );
        let (samples, elapsed) = load(&durable_url, total, in_flight).await?;
        row(
            "request trigger → Compose → Compose → Response, durable",
            samples,
            elapsed,
        );
        anyhow::Ok(())
    })?;
    drop(server);
    Ok(())
}
