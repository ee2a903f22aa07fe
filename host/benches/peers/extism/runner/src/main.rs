//! Runs the Extism twin of cordon's echo benchmark and prints one JSON object per row on
//! stdout, for `cargo run -p cordon-host --example bench` to put beside its own figures.
//!
//! Usage: `extism-runner ECHO_WASM ITERATIONS PAYLOAD_FILE:ITERATIONS...`
//!
//! The first ITERATIONS is for the load rows. Each payload file holds the exact JSON text cordon's benchmark sends, so both sides parse
//! and produce the same bytes. The host side does what cordon's host does apart from schema
//! validation, which Extism has no notion of: serialize the input value, call, parse the
//! output into a value.

use std::time::{Duration, Instant};

use extism::{CompiledPlugin, Plugin, PluginBuilder};
use serde_json::Value;

fn main() {
    if let Err(error) = run() {
        eprintln!("extism-runner: {error:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), extism::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [wasm_path, iterations, payloads @ ..] = args.as_slice() else {
        return Err(extism::Error::msg(
            "usage: extism-runner ECHO_WASM ITERATIONS PAYLOAD_FILE:ITERATIONS...",
        ));
    };
    let iterations: usize = iterations.parse()?;
    let wasm = std::fs::read(wasm_path)?;

    // Compile from scratch: a new engine and module each time, as a first load would, with
    // wasmtime's compilation cache off (Extism turns it on by default).
    let mut samples = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let builder = PluginBuilder::new(wasm.as_slice())
            .with_wasi(false)
            .with_cache_disabled();
        let compiled = CompiledPlugin::new(builder)?;
        samples.push(started.elapsed());
        drop(compiled);
    }
    report("compile", &mut samples);

    // Extism's own cache: its default, wasmtime's compilation cache in the user's cache
    // directory. The first load below fills it; the timed ones hit it.
    let cached = || CompiledPlugin::new(PluginBuilder::new(wasm.as_slice()).with_wasi(false));
    drop(cached()?);
    let mut samples = Vec::new();
    for _ in 0..iterations.min(500) {
        let started = Instant::now();
        let compiled = cached()?;
        samples.push(started.elapsed());
        drop(compiled);
    }
    report("cache_load", &mut samples);

    let compiled = CompiledPlugin::new(
        PluginBuilder::new(wasm.as_slice())
            .with_wasi(false)
            .with_cache_disabled(),
    )?;
    for payload in payloads {
        let (path, iterations) = payload
            .rsplit_once(':')
            .ok_or_else(|| extism::Error::msg(format!("{payload:?} is not PAYLOAD_FILE:ITERATIONS")))?;
        let iterations: usize = iterations.parse()?;
        let text = std::fs::read_to_string(path)?;
        let input: Value = serde_json::from_str(&text)?;
        // The file's stem names the payload in the row: `1k.json` gives `isolated_1k`.
        let size = std::path::Path::new(path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();

        // Isolated: a fresh plugin (store and instance) per call, dropped after it.
        let mut samples = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let started = Instant::now();
            let mut plugin = Plugin::new_from_compiled(&compiled)?;
            let output = echo(&mut plugin, &input)?;
            drop(plugin);
            samples.push(started.elapsed());
            check(&output, &input)?;
        }
        report(&format!("isolated_{size}"), &mut samples);

        // Reused: one plugin for every call.
        let mut plugin = Plugin::new_from_compiled(&compiled)?;
        let mut samples = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let started = Instant::now();
            let output = echo(&mut plugin, &input)?;
            samples.push(started.elapsed());
            check(&output, &input)?;
        }
        report(&format!("reused_{size}"), &mut samples);
    }
    Ok(())
}

fn echo(plugin: &mut Plugin, input: &Value) -> Result<Value, extism::Error> {
    let bytes = serde_json::to_vec(input)?;
    let output: &[u8] = plugin.call("echo", bytes)?;
    Ok(serde_json::from_slice(output)?)
}

fn check(output: &Value, input: &Value) -> Result<(), extism::Error> {
    if output == input {
        Ok(())
    } else {
        Err(extism::Error::msg("the plugin's echo differs from its input"))
    }
}

fn report(row: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize].as_nanos();
    println!(
        "{}",
        serde_json::json!({ "row": row, "p50_ns": at(0.5), "p99_ns": at(0.99), "runs": samples.len() })
    );
}
