//! The workflow engine with durable history (a SQLite file): a 10-step run, Windmill's
//! 40 × 10 ms shape, and throughput with 100 and 1,000 runs in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cordon_host::db::{SqliteDb, Status};
use cordon_host::workflow::project::Project;
use cordon_host::workflow::{Engine, EngineOptions};
use cordon_host::{Runtime, RuntimeConfig};
use serde_json::{Map, Value, json};

use crate::Options;
use crate::stats::{Stats, Table, time};

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

pub async fn run(options: &Options) -> anyhow::Result<()> {
    let runs = options.iterations(500);
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
        // Room for 1,000 connector actions in flight, and the describe of the first load.
        max_concurrent_instances: 1_100,
        ..RuntimeConfig::default()
    })?;
    let db = Arc::new(SqliteDb::open(&dir.path().join("history.db"))?);
    let engine = Engine::open(&project, &runtime, EngineOptions::new(db)).await?;
    // Warm up: connector instances, SQLite pages, allocator.
    time_runs(&engine, "compose10", 20).await?;
    time_runs(&engine, "connector10", 20).await?;

    let table = Table::start(
        "Workflow engine (durable history in SQLite)",
        &["measurement", "p50", "p99", "per step (p50)", "runs"],
    );
    for (workflow, label, steps) in [
        ("compose10", "10 sequential Compose actions", 10u32),
        (
            "connector10",
            "10 sequential connector actions (fresh instance each)",
            10,
        ),
    ] {
        let stats = Stats::of(time_runs(&engine, workflow, runs).await?);
        table.timing(label, stats, time(stats.p50 / steps));
    }
    let wait_runs = if options.quick { 3 } else { 10 };
    let stats = Stats::of(time_runs(&engine, "wait40", wait_runs).await?);
    table.timing(
        "40 sequential 10 ms steps (Windmill's benchmark shape)",
        stats,
        format!(
            "overhead {}",
            time(stats.p50.saturating_sub(Duration::from_millis(400)) / 40)
        ),
    );

    let table = Table::start(
        "Workflow throughput (durable history in SQLite)",
        &["measurement", "runs/s", "steps/s", "runs"],
    );
    for (workflow, in_flight, total) in [
        ("compose10", 100, options.iterations(3_000)),
        ("compose10", 1_000, options.iterations(10_000)),
        ("connector10", 1_000, options.iterations(10_000)),
    ] {
        let rate = throughput(&engine, workflow, in_flight, total).await?;
        table.row(&[
            format!("10-step {workflow} runs, {in_flight} in flight"),
            format!("{rate:.0}"),
            format!("{:.0}", rate * 10.0),
            total.to_string(),
        ]);
    }
    Ok(())
}

/// Runs `total` runs of `workflow`, `in_flight` at a time, and returns runs per second.
async fn throughput(engine: &Engine, workflow: &str, in_flight: usize, total: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..total {
        let permit = semaphore.clone().acquire_owned().await?;
        let engine = engine.clone();
        let workflow = workflow.to_owned();
        tasks.spawn(async move {
            let run = engine.run(&workflow, json!({"n": 1})).await;
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
    anyhow::ensure!(
        succeeded == total,
        "only {succeeded} of {total} {workflow} runs succeeded"
    );
    Ok(total as f64 / elapsed.as_secs_f64())
}
