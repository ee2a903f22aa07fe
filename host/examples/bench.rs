//! Measures the connector runtime and prints the table in BENCHMARKS.md.
//!
//! Run: `cargo run -p cordon-host --example bench` (add `-- --quick` for fewer iterations,
//! `-- --skip-compile` to leave out the compile rows, for profiling the call path).
//! It uses the dev profile on purpose, so it shares the one wasmtime build with the tests;
//! dependencies and cordon-host are optimized in that profile (see the root Cargo.toml).

use std::time::{Duration, Instant};

use cordon_host::secrets::NoSecrets;
use cordon_host::{CallInfo, ConnectionConfig, Grant, Runtime, RuntimeConfig, builtin};

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let skip_compile = std::env::args().any(|a| a == "--skip-compile");
    let iterations = if quick { 1_000 } else { 20_000 };
    let cache = tempfile::tempdir()?;
    println!("| measurement | p50 | p99 | runs |");
    println!("|---|---|---|---|");

    // Compile from scratch: a runtime without a cache, one connector at a time.
    let compiled: &[&str] = if skip_compile {
        &[]
    } else {
        &["json-transform", "http", "github"]
    };
    for &name in compiled {
        let bytes = builtin::find(name).map(|b| b.component).unwrap_or_default();
        let runtime = Runtime::new(RuntimeConfig {
            max_concurrent_instances: 16,
            ..RuntimeConfig::default()
        })?;
        let mut samples = Vec::new();
        for _ in 0..5 {
            runtime.unload_all();
            let started = Instant::now();
            runtime.load_bytes(bytes, name).await?;
            samples.push(started.elapsed());
        }
        let kib = bytes.len() / 1024;
        println!(
            "| compile + describe `{name}` ({kib} KiB) | {} | {} | 5 |",
            millis(percentile(&mut samples, 0.5)),
            millis(percentile(&mut samples, 0.99))
        );
    }

    // Load from the artifact cache (hash, mmap, contract checks, pre-instantiate, describe).
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.path().to_owned()),
        max_concurrent_instances: 64,
        ..RuntimeConfig::default()
    })?;
    let bytes = builtin::find("json-transform")
        .map(|b| b.component)
        .unwrap_or_default();
    runtime.load_bytes(bytes, "json-transform").await?;
    let mut samples = Vec::new();
    for _ in 0..200 {
        runtime.unload_all();
        let started = Instant::now();
        runtime.load_bytes(bytes, "json-transform").await?;
        samples.push(started.elapsed());
    }
    println!(
        "| load `json-transform` from the artifact cache | {} | {} | 200 |",
        millis(percentile(&mut samples, 0.5)),
        millis(percentile(&mut samples, 0.99))
    );

    let connector = runtime.load_bytes(bytes, "json-transform").await?;
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        connector.instantiate_and_drop().await?;
        samples.push(started.elapsed());
    }
    println!(
        "| new store + instantiate + drop | {} | {} | {iterations} |",
        micros(percentile(&mut samples, 0.5)),
        micros(percentile(&mut samples, 0.99))
    );

    let connection = connector.connect(ConnectionConfig {
        name: "bench".parse()?,
        parameters: Default::default(),
        grant: Grant::default(),
        secrets: std::sync::Arc::new(NoSecrets),
    })?;
    let payload = serde_json::json!({ "data": "x".repeat(1000) });
    assert!(payload.to_string().len() >= 1000);
    let call = CallInfo::default();
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let result = connection.invoke("echo", &payload, &call).await.result?;
        samples.push(started.elapsed());
        debug_assert_eq!(result, payload);
    }
    println!(
        "| isolated invocation: fresh instance + echo 1 KiB JSON + drop | {} | {} | {iterations} |",
        micros(percentile(&mut samples, 0.5)),
        micros(percentile(&mut samples, 0.99))
    );
    Ok(())
}
