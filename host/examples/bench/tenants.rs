//! The noisy neighbour: tenant A's connectors spin until their deadline with every one of
//! its instance slots busy, while tenant B runs a trivial workflow (one connector call). B's
//! throughput and p99 are measured alone, then beside A with A's CPU share capped (the
//! default quota is one core; here 0.2 of one) and uncapped (two cores, the whole machine).
//! Target (issue 5): beside A, B keeps at least 80% of its solo throughput and its p99 stays
//! within 2× of solo.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cordon_host::db::Status;
use cordon_host::tenants::open_all;
use cordon_host::workflow::{Engine, EngineOptions};
use serde_json::{Value, json};

use crate::Options;
use crate::stats::{Stats, Table, time};

/// B's runs in flight while it is measured.
const B_IN_FLIGHT: usize = 8;

fn write_tenant(
    dir: &std::path::Path,
    connections: Value,
    workflow: Value,
    quotas: Value,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("w"))?;
    std::fs::write(dir.join("connections.json"), connections.to_string())?;
    std::fs::write(dir.join("tenant.json"), json!({ "quotas": quotas }).to_string())?;
    let workflow = json!({"kind": "Stateful", "definition": {"triggers": {"manual": {"type": "Request"}}, "actions": workflow}});
    std::fs::write(dir.join("w/workflow.json"), workflow.to_string())?;
    Ok(())
}

fn service_call(connection: &str, operation: &str, parameters: Value) -> Value {
    json!({"Call": {"type": "ServiceProvider", "inputs": {
        "parameters": parameters,
        "retryPolicy": {"type": "none"},
        "serviceProviderConfiguration": {"connectionName": connection, "operationId": operation}}}})
}

/// B's throughput (runs per second) and run latencies over `total` runs, `B_IN_FLIGHT` at once.
async fn measure_b(engine: &Engine, total: usize) -> anyhow::Result<(f64, Stats)> {
    let started = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(B_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..total {
        let permit = semaphore.clone().acquire_owned().await?;
        let engine = engine.clone();
        tasks.spawn(async move {
            let began = Instant::now();
            let run = engine.run("w", json!({})).await;
            drop(permit);
            run.map(|r| (r.status, began.elapsed()))
        });
    }
    let mut samples = Vec::with_capacity(total);
    while let Some(joined) = tasks.join_next().await {
        let (status, elapsed) = joined??;
        anyhow::ensure!(status == Status::Succeeded, "a run of tenant B ended {status}");
        samples.push(elapsed);
    }
    Ok((total as f64 / started.elapsed().as_secs_f64(), Stats::of(samples)))
}

/// Keeps `in_flight` of A's spinning runs going until `stop` is set. Each task returns how
/// many runs it finished and how long they took in all (a spinning run lasts until its
/// 1 s deadline; much shorter runs would mean A was not really spinning).
fn start_noise(
    engine: &Engine,
    in_flight: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinSet<(usize, Duration)> {
    let mut noise = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let (engine, stop) = (engine.clone(), stop.clone());
        noise.spawn(async move {
            let (mut runs, mut spent) = (0, Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                let _ = engine.run("w", json!({})).await;
                spent += began.elapsed();
                runs += 1;
            }
            (runs, spent)
        });
    }
    noise
}

pub async fn run(options: &Options) -> anyhow::Result<()> {
    let runs = options.iterations(10_000);
    let hostile =
        cordon_guest_build::build_guests_quietly(&crate::workspace_root(), &["cordon-fixture-hostile"])
            .join("cordon_fixture_hostile.wasm");
    let table = Table::start(
        "Noisy neighbour: tenant B's one-call workflow beside tenant A spinning on every slot",
        &[
            "scenario",
            "B runs/s",
            "B p50",
            "B p99",
            "throughput vs solo",
            "p99 vs solo",
            "A runs, mean length",
        ],
    );
    let mut solo = None;
    // A's CPU share in seconds per minute: 12 is 0.2 of a core, 120 is both cores.
    for (scenario, a_cpu) in [
        ("B alone", None),
        ("beside A, A capped at 0.2 core", Some(12)),
        ("beside A, A at 2 cores (the whole machine)", Some(120)),
    ] {
        let root = tempfile::tempdir()?;
        let (a_dir, b_dir) = (root.path().join("a"), root.path().join("b"));
        std::fs::create_dir_all(a_dir.join("connectors"))?;
        std::fs::copy(&hostile, a_dir.join("connectors/hostile.wasm"))?;
        let a_slots = 50;
        write_tenant(
            &a_dir,
            json!({"serviceProviderConnections": {"hostile": {"connector": "connectors/hostile.wasm"}}}),
            service_call("hostile", "spin", json!({})),
            json!({"concurrentInvocations": a_slots, "secondsPerInvocation": 1, "cpuSecondsPerMinute": a_cpu.unwrap_or(60)}),
        )?;
        write_tenant(
            &b_dir,
            json!({"serviceProviderConnections": {"transform": {"connector": "json-transform"}}}),
            service_call("transform", "echo", json!({"n": 1})),
            json!({}),
        )?;
        let (tenants, _operator) = open_all(root.path(), |_, db| Ok(EngineOptions::new(db)))
            .await?
            .require_all()?;
        let (a, b) = (&tenants[0].engine, &tenants[1].engine);
        // Warm B (its connector's first instantiation) before measuring.
        measure_b(b, 50).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut noise = match a_cpu {
            Some(_) => {
                let noise = start_noise(a, a_slots as usize, stop.clone());
                tokio::time::sleep(Duration::from_millis(300)).await;
                Some(noise)
            }
            None => None,
        };
        let (throughput, stats) = measure_b(b, runs).await?;
        stop.store(true, Ordering::Relaxed);
        let (mut a_runs, mut a_spent) = (0, Duration::ZERO);
        if let Some(noise) = noise.as_mut() {
            while let Some(joined) = noise.join_next().await {
                let (runs, spent) = joined?;
                a_runs += runs;
                a_spent += spent;
            }
        }
        if a_runs > 0 {
            let mean = a_spent / a_runs as u32;
            anyhow::ensure!(
                mean >= Duration::from_millis(900),
                "tenant A's runs took {mean:?} on average: they did not spin to their 1 s deadline"
            );
        }
        let (solo_throughput, solo_p99) = *solo.get_or_insert((throughput, stats.p99));
        table.row(&[
            scenario.to_owned(),
            format!("{throughput:.0}"),
            time(stats.p50),
            time(stats.p99),
            format!("{:.0}%", 100.0 * throughput / solo_throughput),
            format!("{:.2}×", stats.p99.as_secs_f64() / solo_p99.as_secs_f64()),
            if a_runs > 0 {
                format!("{a_runs}, {}", time(a_spent / a_runs as u32))
            } else {
                "–".to_owned()
            },
        ]);
    }
    Ok(())
}
