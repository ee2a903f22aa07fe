//! Measures the workflow engine with durable history (a SQLite file) and prints the table in
//! BENCHMARKS.md.
//!
//! Run: `cargo run -p cordon-host --example workflow_bench` (add `-- --quick` for fewer runs).
//! Like `bench`, it uses the dev profile, whose dependencies and cordon-host are optimized.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cordon_host::db::{SqliteDb, Status};
use cordon_host::workflow::project::Project;
use cordon_host::workflow::{Engine, EngineOptions};
use cordon_host::{Runtime, RuntimeConfig};
use serde_json::{Map, Value, json};

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// A chain of `n` actions made by `step(i)`, each after the previous one.
fn chain(n: usize, step: impl Fn(usize) -> Value) -> Value {
    let mut actions = Map::new();
    for i in 0..n {
        let mut action = step(i);
        if i > 0 {
            action["runAfter"] = json!({format!("Step_{}", i - 1): ["Succeeded"]});
        }
        actions.insert(format!("Step_{i}"), action);
    }
    Value::Object(actions)
}

fn write_workflow(dir: &std::path::Path, name: &str, actions: Value) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join(name))?;
    let workflow = json!({"kind": "Stateful", "definition": {"triggers": {"manual": {"type": "Request"}}, "actions": actions}});
    std::fs::write(dir.join(name).join("workflow.json"), workflow.to_string())?;
    Ok(())
}

async fn time_runs(engine: &Engine, workflow: &str, runs: usize) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let run = engine.run(workflow, json!({"n": 1})).await?;
        samples.push(started.elapsed());
        anyhow::ensure!(
            run.status == Status::Succeeded,
            "{workflow} failed: {:?}",
            run.error
        );
    }
    Ok(samples)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 50 } else { 500 };
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("connections.json"),
        json!({"serviceProviderConnections": {"transform": {"connector": "json-transform"}}}).to_string(),
    )?;
    write_workflow(
        dir.path(),
        "compose10",
        chain(
            10,
            |i| json!({"type": "Compose", "inputs": {"step": i, "n": "@triggerBody()?['n']"}}),
        ),
    )?;
    write_workflow(
        dir.path(),
        "connector10",
        chain(10, |i| {
            json!({"type": "ServiceProvider", "inputs": {
                "parameters": {"step": i},
                "serviceProviderConfiguration": {"connectionName": "transform", "operationId": "echo"}}})
        }),
    )?;
    write_workflow(
        dir.path(),
        "wait40",
        chain(
            40,
            |_| json!({"type": "Wait", "inputs": {"interval": {"count": 0.01, "unit": "Second"}}}),
        ),
    )?;

    let project = Project::open(dir.path())?;
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.path().join("cache")),
        ..RuntimeConfig::default()
    })?;
    let db = Arc::new(SqliteDb::open(&dir.path().join("history.db"))?);
    let engine = Engine::open(&project, &runtime, EngineOptions::new(db)).await?;
    // Warm up: connector instances, SQLite pages, allocator.
    time_runs(&engine, "compose10", 20).await?;
    time_runs(&engine, "connector10", 20).await?;

    println!("| measurement | p50 | p99 | per step (p50) | runs |");
    println!("|---|---|---|---|---|");
    for (workflow, label, steps) in [
        ("compose10", "10 sequential Compose actions, durable", 10u32),
        (
            "connector10",
            "10 sequential connector actions (fresh instance each), durable",
            10,
        ),
    ] {
        let mut samples = time_runs(&engine, workflow, runs).await?;
        let p50 = percentile(&mut samples, 0.5);
        println!(
            "| {label} | {} | {} | {} | {runs} |",
            ms(p50),
            ms(percentile(&mut samples, 0.99)),
            ms(p50 / steps)
        );
    }
    let wait_runs = if quick { 3 } else { 10 };
    let mut samples = time_runs(&engine, "wait40", wait_runs).await?;
    let p50 = percentile(&mut samples, 0.5);
    println!(
        "| 40 sequential 10 ms steps (Windmill's benchmark shape), durable | {} | {} | overhead {} | {wait_runs} |",
        ms(p50),
        ms(percentile(&mut samples, 0.99)),
        ms(p50.saturating_sub(Duration::from_millis(400)) / 40)
    );

    // Throughput: 100 runs in flight at all times.
    let total = if quick { 500 } else { 3000 };
    let in_flight = 100;
    let started = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..total {
        let permit = semaphore.clone().acquire_owned().await?;
        let engine = engine.clone();
        tasks.spawn(async move {
            let run = engine.run("compose10", json!({"n": 1})).await;
            drop(permit);
            run.map(|r| r.status)
        });
    }
    let mut succeeded = 0;
    while let Some(result) = tasks.join_next().await {
        if result?? == Status::Succeeded {
            succeeded += 1;
        }
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(succeeded == total, "only {succeeded} of {total} runs succeeded");
    println!(
        "| runs per second, 100 in flight (10-step Compose runs) | {:.0} runs/s | | {:.0} steps/s | {total} |",
        total as f64 / elapsed.as_secs_f64(),
        total as f64 * 10.0 / elapsed.as_secs_f64()
    );
    Ok(())
}
