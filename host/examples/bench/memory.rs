//! Resident memory: per loaded connector, per connection (up to 10,000), and per instance
//! in flight (1,000 calls held open by the loopback server at once).
//!
//! Figures are differences of this process's resident set (`/proc/self/statm`) before and
//! after, so they include everything the host keeps for each item: compiled code mapped from
//! the artifact cache, manifests, HTTP clients, stores, instances and their memory pages.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cordon_host::secrets::NoSecrets;
use cordon_host::{CallInfo, ConnectionConfig, Runtime, RuntimeConfig, builtin};
use serde_json::json;

use crate::Options;
use crate::stats::{Table, kib, mib, rss_bytes};

const CONNECTIONS: usize = 10_000;
const IN_FLIGHT: usize = 1_000;

pub async fn run(options: &Options) -> anyhow::Result<()> {
    let table = Table::start("Resident memory", &["measurement", "per item", "total", "items"]);
    let cache = tempfile::tempdir()?;
    let config = || RuntimeConfig {
        cache_dir: Some(cache.path().to_owned()),
        max_concurrent_instances: IN_FLIGHT as u32 + 16,
        ..RuntimeConfig::default()
    };
    let names = ["json-transform", "http", "github"];
    // Compile once into the cache, in a runtime kept alive until the row is measured: freeing
    // it meanwhile would let the allocator hand memory back during the measurement.
    let warm = Runtime::new(config())?;
    for name in names {
        warm.load_bytes(component(name), name).await?;
    }

    let runtime = Runtime::new(config())?;
    let before = rss_bytes()?;
    for name in names {
        runtime.load_bytes(component(name), name).await?;
    }
    let loaded = rss_bytes()? - before;
    drop(warm);
    if loaded > 0.0 {
        table.row(&[
            "loaded connector (from the artifact cache)".into(),
            kib(loaded / names.len() as f64),
            mib(loaded),
            names.len().to_string(),
        ]);
    } else {
        // mimalloc returns memory freed by the earlier sections lazily, and a purge that falls
        // inside this short measurement makes the difference negative: say so, not a figure.
        table.row(&[
            "loaded connector (from the artifact cache)".into(),
            format!(
                "not measured: the resident set fell by {} while loading (the allocator returned freed memory)",
                mib(-loaded)
            ),
            String::new(),
            names.len().to_string(),
        ]);
    }

    let server = crate::http::serve().await?;
    let http = runtime.load_bytes(component("http"), "http").await?;
    let grant = crate::http::loopback_grant(server.port)?;
    let count = if options.quick {
        CONNECTIONS / 10
    } else {
        CONNECTIONS
    };
    let before = rss_bytes()?;
    let mut connections = Vec::with_capacity(count);
    for i in 0..count {
        connections.push(http.connect(ConnectionConfig {
            name: format!("tenant-{i}").parse()?,
            parameters: Default::default(),
            grant: grant.clone(),
            secrets: Arc::new(NoSecrets),
        })?);
    }
    let after = rss_bytes()?;
    table.row(&[
        "connection (`http` connector, own grant and HTTP client)".into(),
        kib((after - before) / count as f64),
        mib(after - before),
        count.to_string(),
    ]);
    table.row(&[
        format!("whole process with {count} connections loaded"),
        String::new(),
        mib(after),
        count.to_string(),
    ]);
    drop(connections);

    // Instances in flight: every call waits in the server's /hold until all have arrived.
    let bench = crate::http::connect(&runtime, server.port).await?;
    let in_flight = if options.quick { IN_FLIGHT / 10 } else { IN_FLIGHT };
    let before = rss_bytes()?;
    let url = format!("http://127.0.0.1:{}/hold", server.port);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let bench = bench.clone();
        let input = json!({ "url": url });
        calls.spawn(async move { bench.invoke("fetch", &input, &CallInfo::default()).await.result });
    }
    let waited = Instant::now();
    while server.held.load(Ordering::SeqCst) < in_flight {
        anyhow::ensure!(
            waited.elapsed() < Duration::from_secs(60),
            "only {} of {in_flight} calls reached the server within 60 s",
            server.held.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let peak = rss_bytes()?;
    let live = runtime.metrics().live_instances();
    server.release.notify_waiters();
    let mut succeeded = 0;
    while let Some(result) = calls.join_next().await {
        if result?.is_ok() {
            succeeded += 1;
        }
    }
    anyhow::ensure!(
        succeeded == in_flight,
        "only {succeeded} of {in_flight} calls succeeded"
    );
    anyhow::ensure!(
        live as usize >= in_flight,
        "{live} live instances, expected {in_flight}"
    );
    table.row(&[
        format!("instance in flight (a call waiting on HTTP; {live} live at once)"),
        kib((peak - before) / in_flight as f64),
        mib(peak - before),
        in_flight.to_string(),
    ]);
    Ok(())
}

fn component(name: &str) -> &'static [u8] {
    builtin::find(name).map(|b| b.component).unwrap_or_default()
}
