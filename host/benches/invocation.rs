//! Criterion micro-benchmarks of the call path:
//! `cargo bench -p cordon-host --bench invocation --profile dev`.
//!
//! `--profile dev` on purpose: cargo's `bench` profile is `release`, which would compile
//! wasmtime a second time; in `dev`, dependencies and cordon-host are built with
//! `opt-level = 2` (root Cargo.toml), as for the bench command and the tests.
//!
//! The whole table, with peers, percentiles and memory, is `cargo run -p cordon-host --example
//! bench`; these are the pieces of it that benefit from criterion's statistics when one of them
//! is being optimized (compare runs with `--save-baseline` / `--baseline`).

use std::sync::Arc;

use cordon_host::secrets::NoSecrets;
use cordon_host::{CallInfo, Connection, ConnectionConfig, Grant, Runtime, RuntimeConfig, builtin};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

/// The allocator of the `cordon` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn echo_connection(runtime: &tokio::runtime::Runtime, cache: &std::path::Path) -> (Runtime, Connection) {
    let bytes = builtin::find("json-transform")
        .map(|b| b.component)
        .unwrap_or_default();
    runtime.block_on(async {
        let host = Runtime::new(RuntimeConfig {
            cache_dir: Some(cache.to_owned()),
            max_concurrent_instances: 16,
            ..RuntimeConfig::default()
        })
        .expect("runtime");
        let connector = host.load_bytes(bytes, "json-transform").await.expect("load");
        let connection = connector
            .connect(ConnectionConfig {
                name: "bench".parse().expect("name"),
                parameters: Default::default(),
                grant: Grant::default(),
                secrets: Arc::new(NoSecrets),
            })
            .expect("connect");
        (host, connection)
    })
}

fn payload(bytes: usize) -> Value {
    json!({ "data": "x".repeat(bytes.saturating_sub(12)) })
}

fn invocation(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let cache = tempfile::tempdir().expect("tempdir");
    let (host, connection) = echo_connection(&tokio, cache.path());
    let bytes = builtin::find("json-transform")
        .map(|b| b.component)
        .unwrap_or_default();

    // The payload here is one long string; the bench command's 64 KiB payload is 600 records.
    let mut group = c.benchmark_group("echo");
    for size in [1024, 64 * 1024] {
        let input = payload(size);
        group.bench_with_input(BenchmarkId::new("isolated", size), &input, |b, input| {
            let call = CallInfo::default();
            b.iter(|| {
                tokio
                    .block_on(connection.invoke("echo", input, &call))
                    .result
                    .expect("echo")
            });
        });
        // Only the calls that find a spare ready, timed from the call: waiting for the spare
        // thread to make the next one is left out of the time.
        group.bench_with_input(BenchmarkId::new("on_spare", size), &input, |b, input| {
            let call = CallInfo::default();
            let metrics = connection.connector().runtime().metrics();
            // The first call asks the spare thread for spares.
            tokio
                .block_on(connection.invoke("echo", input, &call))
                .result
                .expect("echo");
            b.iter_custom(|iterations| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iterations {
                    let waited = std::time::Instant::now();
                    while metrics.spare_instances_ready() == 0 {
                        assert!(
                            waited.elapsed() < std::time::Duration::from_secs(10),
                            "no spare instance was made within 10 s"
                        );
                        std::thread::yield_now();
                    }
                    let started = std::time::Instant::now();
                    let output = tokio.block_on(connection.invoke("echo", input, &call)).result;
                    total += started.elapsed();
                    output.expect("echo");
                }
                total
            });
        });
        group.bench_with_input(BenchmarkId::new("reused", size), &input, |b, input| {
            let mut instance = tokio.block_on(connection.reused_instance()).expect("instance");
            b.iter(|| tokio.block_on(instance.invoke("echo", input)).expect("echo"));
        });
        group.bench_with_input(BenchmarkId::new("native", size), &input, |b, input| {
            b.iter(|| {
                let text = serde_json::to_string(input).expect("json");
                let parsed: Value = serde_json::from_str(&text).expect("json");
                let answer = serde_json::to_string(&std::hint::black_box(parsed)).expect("json");
                serde_json::from_str::<Value>(&answer).expect("json")
            });
        });
    }
    group.finish();

    // Writing a value's JSON text: its `Display` against `serde_json::to_string`, which the
    // host uses (`json_text.rs`), on 600 records of about 64 KiB like the bench command's.
    let records = json!({
        "records": (0..600)
            .map(|i| json!({
                "id": i, "name": format!("item {i}"), "price": 12.5 + f64::from(i),
                "tags": ["a", "b"], "active": i % 2 == 0
            }))
            .collect::<Vec<_>>()
    });
    let mut group = c.benchmark_group("json_text");
    group.bench_function("display", |b| {
        b.iter(|| std::hint::black_box(&records).to_string())
    });
    group.bench_function("serde_json_to_string", |b| {
        b.iter(|| serde_json::to_string(std::hint::black_box(&records)).expect("json"))
    });
    group.finish();

    c.bench_function("instantiate_and_drop", |b| {
        b.iter(|| {
            tokio
                .block_on(connection.connector().instantiate_and_drop())
                .expect("instantiate")
        });
    });
    // A connector file's bytes are hashed (SHA-256) on every load; a built-in's hash is known.
    c.bench_function("load_bytes_from_artifact_cache", |b| {
        b.iter(|| {
            host.unload_all();
            tokio
                .block_on(host.load_bytes(bytes, "json-transform"))
                .expect("load")
        });
    });
    let builtin = builtin::find("json-transform").expect("built in");
    c.bench_function("load_builtin_from_artifact_cache", |b| {
        b.iter(|| {
            host.unload_all();
            tokio.block_on(host.load_builtin(builtin)).expect("load")
        });
    });
}

criterion_group!(benches, invocation);
criterion_main!(benches);
