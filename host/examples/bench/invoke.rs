//! Cold load and the isolated invocation: cordon beside native Rust, plain wasmtime and
//! Extism, for the same echo operation on the same JSON bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cordon_host::secrets::NoSecrets;
use cordon_host::{
    CallInfo, Connection, ConnectionConfig, Grant, Identity, InstanceAllocation, Runtime, RuntimeConfig,
    builtin,
};
use serde_json::{Value, json};

use crate::Options;
use crate::peers::{self, PeerRows};
use crate::stats::{Stats, Table, process_cpu, ratio, time};

/// The two payloads of the issue: a 1 KiB object, and 64 KiB of realistic records.
pub fn payloads() -> [(&'static str, Value); 2] {
    let small = json!({ "data": "x".repeat(1000) });
    let mut records = Vec::new();
    let mut large = json!({ "records": [] });
    while large.to_string().len() < 64 * 1024 - 160 {
        let i = records.len();
        records.push(json!({
            "id": i, "name": format!("item {i}"), "price": 12.5 + i as f64,
            "tags": ["a", "b"], "active": i % 2 == 0
        }));
        large = json!({ "records": records });
    }
    [("1k", small), ("64k", large)]
}

/// Calls per row for a payload: the 64 KiB rows take a hundred times longer, so fewer.
pub fn iterations_for(options: &Options, payload: &str) -> usize {
    let full = options.iterations(20_000);
    if payload == "1k" { full } else { full / 4 }
}

/// The same operation with no sandbox: the JSON round trip any isolation boundary needs
/// (serialize the input, parse it on the other side, serialize the answer, parse it back),
/// with the echo itself in between. This is the floor. Written with `serde_json::to_string`,
/// the fastest way serde_json has (a `Value`'s `Display` takes twice as long, criterion
/// group `json_text`).
fn native_echo(input: &Value) -> Value {
    let text = serde_json::to_string(input).unwrap_or_default();
    let parsed: Value = serde_json::from_str(&text).unwrap_or_default();
    let answer = serde_json::to_string(&std::hint::black_box(parsed)).unwrap_or_default();
    serde_json::from_str(&answer).unwrap_or_default()
}

fn echo_connector_bytes() -> &'static [u8] {
    builtin::find("json-transform")
        .map(|b| b.component)
        .unwrap_or_default()
}

async fn connect(runtime: &Runtime) -> anyhow::Result<Connection> {
    let connector = runtime
        .load_bytes(echo_connector_bytes(), "json-transform")
        .await?;
    Ok(connector.connect(ConnectionConfig {
        name: "bench".parse()?,
        parameters: Default::default(),
        grant: Grant::default(),
        secrets: Arc::new(NoSecrets),
    })?)
}

/// The interval of the paced row: 10,000 calls a second on one caller, a third of what this
/// machine sustains back to back.
const PACE: Duration = Duration::from_micros(100);

/// How many rounds the echo rows are measured in. This VM's speed drifts by up to 1.7× within
/// minutes (the native floor measured 2.2 µs and 3.8 µs in runs an hour apart); with each row
/// measured in one block, a slow phase fell on whichever rows ran during it. In rounds, every
/// row gets a share of each phase, so the ratios between rows hold even when the absolute
/// figures move. Within a round a row still runs its calls back to back.
const ROUNDS: usize = 5;

async fn isolated(
    connection: &Connection,
    input: &Value,
    iterations: usize,
) -> anyhow::Result<Vec<Duration>> {
    Ok(isolated_with_cost(connection, input, iterations).await?.0)
}

/// What calls one after another cost in all: wall-clock time and the process's CPU time
/// (every thread: the caller's, the spare thread's, the epoch ticker's), summed over calls.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    wall: Duration,
    cpu: Duration,
    calls: u32,
    /// Calls that found a spare instance ready.
    on_spares: u64,
}

impl Cost {
    fn add(&mut self, other: Cost) {
        self.wall += other.wall;
        self.cpu += other.cpu;
        self.calls += other.calls;
        self.on_spares += other.on_spares;
    }

    fn per_call(&self) -> (Duration, Duration, f64) {
        let n = self.calls.max(1);
        (self.wall / n, self.cpu / n, self.on_spares as f64 / f64::from(n))
    }
}

async fn isolated_with_cost(
    connection: &Connection,
    input: &Value,
    iterations: usize,
) -> anyhow::Result<(Vec<Duration>, Cost)> {
    let call = CallInfo::default();
    // Warm up the pool's slots and the allocator.
    for _ in 0..iterations.min(200) {
        connection.invoke("echo", input, &call).await.result?;
    }
    let mut samples = Vec::with_capacity(iterations);
    let metrics = connection.connector().runtime().metrics();
    let spares_before = metrics.calls_on_spare_instances();
    let cpu_before = process_cpu()?;
    let began = Instant::now();
    for _ in 0..iterations {
        let started = Instant::now();
        let output = connection.invoke("echo", input, &call).await.result?;
        samples.push(started.elapsed());
        anyhow::ensure!(&output == input, "echo changed its input");
    }
    let cost = Cost {
        wall: began.elapsed(),
        cpu: process_cpu()?.saturating_sub(cpu_before),
        calls: u32::try_from(iterations)?,
        on_spares: metrics.calls_on_spare_instances() - spares_before,
    };
    Ok((samples, cost))
}

/// Calls at a steady rate instead of back to back: the latency a caller sees when the
/// runtime is not saturated, which is when the spare thread has an instance ready for every
/// call. The caller spins between calls (no timer), so the pacing itself adds no wake-up.
async fn isolated_paced(
    connection: &Connection,
    input: &Value,
    iterations: usize,
    interval: Duration,
) -> anyhow::Result<(Vec<Duration>, u64)> {
    let call = CallInfo::default();
    let metrics = connection.connector().runtime().metrics();
    let spares_before = metrics.calls_on_spare_instances();
    let mut samples = Vec::with_capacity(iterations);
    let mut next = Instant::now();
    for _ in 0..iterations {
        next += interval;
        while Instant::now() < next {
            std::hint::spin_loop();
        }
        let started = Instant::now();
        let output = connection.invoke("echo", input, &call).await.result?;
        samples.push(started.elapsed());
        anyhow::ensure!(&output == input, "echo changed its input");
    }
    Ok((samples, metrics.calls_on_spare_instances() - spares_before))
}

async fn reused(connection: &Connection, input: &Value, iterations: usize) -> anyhow::Result<Vec<Duration>> {
    let mut instance = connection.reused_instance().await?;
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let output = instance.invoke("echo", input).await?;
        samples.push(started.elapsed());
        anyhow::ensure!(&output == input, "echo changed its input");
    }
    Ok(samples)
}

pub async fn run(options: &Options) -> anyhow::Result<()> {
    let cache = tempfile::tempdir()?;
    let payloads = payloads();
    let extism = if options.extism {
        peers::extism(options, &payloads)
    } else {
        PeerRows::skipped("left out with --no-extism")
    };
    if options.wants("load") {
        load(options, cache.path(), &extism).await?;
    }
    if options.wants("invoke") {
        invoke(options, cache.path(), &payloads, &extism).await?;
    }
    Ok(())
}

async fn load(options: &Options, cache: &std::path::Path, extism: &PeerRows) -> anyhow::Result<()> {
    let table = Table::start("Cold load", &["measurement", "p50", "p99", "ratio", "runs"]);
    let bytes = echo_connector_bytes();
    let kib = bytes.len() / 1024;
    // Written first, so it has settled by the time its row runs (after the compiles).
    let files = tempfile::tempdir()?;
    let unchanged = files.path().join("unchanged.wasm");
    std::fs::write(&unchanged, bytes)?;
    let unchanged_written = Instant::now();
    let plain = Runtime::new(RuntimeConfig {
        max_concurrent_instances: 16,
        allocation: InstanceAllocation::OnDemand,
        ..RuntimeConfig::default()
    })?;
    let mut samples = Vec::new();
    for _ in 0..5 {
        plain.unload_all();
        let started = Instant::now();
        plain.load_bytes(bytes, "json-transform").await?;
        samples.push(started.elapsed());
    }
    let compile = Stats::of(samples);
    table.timing(
        &format!("cordon: compile + check + describe `json-transform` ({kib} KiB)"),
        compile,
        "1.00×".into(),
    );
    match extism.get("compile") {
        Ok(stats) => table.timing(
            &format!("Extism: compile the echo plug-in ({} KiB)", extism.wasm_kib),
            stats,
            format!("{} cordon compile", ratio(stats.p50, compile.p50)),
        ),
        Err(reason) => table.missing("Extism: compile", reason),
    }

    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.to_owned()),
        max_concurrent_instances: 64,
        ..RuntimeConfig::default()
    })?;
    let builtin = builtin::find("json-transform").ok_or_else(|| anyhow::anyhow!("no json-transform"))?;
    runtime.load_builtin(builtin).await?;
    // Built-ins carry their SHA-256 from build time. A connector file's hash is its identity
    // (and the cache key): it is computed on a file's first load, and remembered by the
    // file's status once the file has been unchanged for a few seconds (`file_identity.rs`).
    // The "first sight" file is written anew for its row, so it is never remembered; the
    // "unchanged" file was written at the start of this section and has settled.
    let first_sight = files.path().join("first-sight.wasm");
    std::fs::write(&first_sight, bytes)?;
    let rows = [
        (
            "cordon: load the built-in `json-transform` from the artifact cache",
            None,
        ),
        (
            "cordon: load the same connector as a file seen for the first time (read + SHA-256), from the cache",
            Some((first_sight.as_path(), Identity::Hashed)),
        ),
        (
            "cordon: load the same connector as an unchanged file (hash remembered), from the cache",
            Some((unchanged.as_path(), Identity::Remembered)),
        ),
    ];
    let settled_at = unchanged_written + cordon_host::FILE_SETTLED + Duration::from_millis(200);
    std::thread::sleep(settled_at.saturating_duration_since(Instant::now()));
    runtime.load_file(&unchanged).await?;
    let mut cordon_cached = Vec::new();
    for (label, file) in rows {
        let mut samples = Vec::new();
        for _ in 0..options.iterations(500) {
            runtime.unload_all();
            let started = Instant::now();
            let connector = match file {
                Some((path, _)) => runtime.load_file(path).await?,
                None => runtime.load_builtin(builtin).await?,
            };
            samples.push(started.elapsed());
            if let Some((_, expected)) = file {
                let identity = connector.load_report().identity;
                anyhow::ensure!(
                    identity == expected,
                    "{label}: the hash was {identity:?}, not {expected:?}"
                );
            }
        }
        let cached = Stats::of(samples);
        cordon_cached.push(cached);
        table.timing(
            label,
            cached,
            format!(
                "{:.0}× faster than compiling",
                compile.p50.as_secs_f64() / cached.p50.as_secs_f64()
            ),
        );
    }
    match extism.get("cache_load") {
        Ok(stats) => table.timing(
            "Extism: load the echo plug-in from its compilation cache (wasmtime's)",
            stats,
            format!(
                "{} cordon's built-in load",
                ratio(stats.p50, cordon_cached[0].p50)
            ),
        ),
        Err(reason) => table.missing("Extism: load from its cache", reason),
    }
    Ok(())
}

async fn invoke(
    options: &Options,
    cache: &std::path::Path,
    payloads: &[(&str, Value)],
    extism: &PeerRows,
) -> anyhow::Result<()> {
    let pooled = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.to_owned()),
        max_concurrent_instances: 64,
        ..RuntimeConfig::default()
    })?;
    let plain = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.to_owned()),
        max_concurrent_instances: 64,
        allocation: InstanceAllocation::OnDemand,
        spare_instances: 0,
        ..RuntimeConfig::default()
    })?;
    // The same pooled runtime without spare instances: every call makes its instance and
    // drops its store on its own path, which is what the spares take off it.
    let no_spares = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.to_owned()),
        max_concurrent_instances: 64,
        spare_instances: 0,
        ..RuntimeConfig::default()
    })?;
    let cordon = connect(&pooled).await?;
    let no_spares = connect(&no_spares).await?;
    let plain = connect(&plain).await?;
    let mut costs = Vec::new();
    let iterations = options.iterations(20_000);
    let table = Table::start(
        "Echo: one call of an operation that returns its JSON input",
        &[
            "measurement",
            "p50",
            "p99",
            "ratio to cordon isolated (p50)",
            "runs",
        ],
    );
    cordon.connector().instantiate_and_drop().await?;
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        cordon.connector().instantiate_and_drop().await?;
        samples.push(started.elapsed());
    }
    let instantiate = Stats::of(samples);
    table.timing(
        "cordon: new store + instantiate + drop (no call)",
        instantiate,
        String::new(),
    );

    for (size, input) in payloads {
        let per_round = (iterations_for(options, size) / ROUNDS).max(1);
        let mut rounds = Rounds::default();
        for _ in 0..ROUNDS {
            rounds
                .round(per_round, input, &cordon, &no_spares, &plain)
                .await?;
        }
        let Rounds {
            native,
            base,
            inline,
            paced,
            reused,
            plain,
            cost,
            inline_cost,
            paced_on_spares,
        } = rounds;
        let (native, base, inline, paced) = (
            Stats::of(native),
            Stats::of(base),
            Stats::of(inline),
            Stats::of(paced),
        );
        let paced_on_spares = paced_on_spares as f64 / paced.runs as f64;
        costs.push((size, cost, inline_cost));
        let rows: Vec<(String, Result<Stats, String>)> = vec![
            (
                format!("native Rust, JSON round trip, {size} (the floor)"),
                Ok(native),
            ),
            (format!("**cordon, isolated (fresh instance), {size}**"), Ok(base)),
            (
                format!("cordon, isolated, no spare instances (made and dropped on the call's path), {size}"),
                Ok(inline),
            ),
            (
                format!(
                    "cordon, isolated, one call every {} µs ({:.0} % on spares), {size}",
                    PACE.as_micros(),
                    paced_on_spares * 100.0
                ),
                Ok(paced),
            ),
            (
                format!("cordon, one instance reused, {size}"),
                Ok(Stats::of(reused)),
            ),
            (
                format!("plain wasmtime (no pooling), isolated, {size}"),
                Ok(Stats::of(plain)),
            ),
            (
                format!("Extism, isolated (fresh plug-in), {size}"),
                extism.get(&format!("isolated_{size}")),
            ),
            (
                format!("Extism, one plug-in reused, {size}"),
                extism.get(&format!("reused_{size}")),
            ),
        ];
        for (label, stats) in rows {
            match stats {
                Ok(stats) => table.timing(&label, stats, ratio(stats.p50, base.p50)),
                Err(reason) => table.missing(&label, reason),
            }
        }
    }
    let table = Table::start(
        "Echo: what the isolated calls above cost in all, calls one after another",
        &[
            "measurement",
            "wall time per call",
            "process CPU per call",
            "calls on a spare",
        ],
    );
    for (size, cost, inline_cost) in costs {
        for (label, cost) in [
            (format!("cordon, isolated, {size}"), cost),
            (
                format!("cordon, isolated, no spare instances, {size}"),
                inline_cost,
            ),
        ] {
            let (wall, cpu, on_spares) = cost.per_call();
            table.row(&[
                label,
                time(wall),
                time(cpu),
                format!("{:.0} %", on_spares * 100.0),
            ]);
        }
    }
    Ok(())
}

/// The samples of the echo rows of one payload, gathered over `ROUNDS` rounds.
#[derive(Default)]
struct Rounds {
    native: Vec<Duration>,
    base: Vec<Duration>,
    inline: Vec<Duration>,
    paced: Vec<Duration>,
    reused: Vec<Duration>,
    plain: Vec<Duration>,
    cost: Cost,
    inline_cost: Cost,
    paced_on_spares: u64,
}

impl Rounds {
    /// One round: every row, one after another, `calls` calls each.
    async fn round(
        &mut self,
        calls: usize,
        input: &Value,
        cordon: &Connection,
        no_spares: &Connection,
        plain: &Connection,
    ) -> anyhow::Result<()> {
        for _ in 0..calls {
            let started = Instant::now();
            let output = native_echo(input);
            self.native.push(started.elapsed());
            anyhow::ensure!(&output == input, "native echo changed its input");
        }
        let (samples, cost) = isolated_with_cost(cordon, input, calls).await?;
        self.base.extend(samples);
        self.cost.add(cost);
        let (samples, cost) = isolated_with_cost(no_spares, input, calls).await?;
        self.inline.extend(samples);
        self.inline_cost.add(cost);
        let (samples, on_spares) = isolated_paced(cordon, input, calls, PACE).await?;
        self.paced.extend(samples);
        self.paced_on_spares += on_spares;
        self.reused.extend(reused(cordon, input, calls).await?);
        self.plain.extend(isolated(plain, input, calls).await?);
        Ok(())
    }
}
