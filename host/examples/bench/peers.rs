//! The Extism peer: builds `host/benches/peers/extism` (its own workspace, its own wasmtime)
//! and runs it on the same payload bytes, in this same run.
//!
//! A failed build does not stop the benchmark: the Extism rows then say why they are empty.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::Options;
use crate::stats::Stats;

/// The rows the Extism runner printed, or why there are none.
pub struct PeerRows {
    rows: Result<HashMap<String, Stats>, String>,
    pub wasm_kib: usize,
}

impl PeerRows {
    pub fn skipped(reason: &str) -> PeerRows {
        PeerRows {
            rows: Err(reason.to_owned()),
            wasm_kib: 0,
        }
    }

    /// One row's figures, or a note for the table saying why it was not measured.
    pub fn get(&self, row: &str) -> Result<Stats, String> {
        match &self.rows {
            Ok(rows) => rows
                .get(row)
                .copied()
                .ok_or_else(|| format!("not measured (the runner printed no {row:?} row)")),
            Err(reason) => Err(format!("not measured: {reason}")),
        }
    }
}

const GUEST_TARGET: &str = "wasm32-unknown-unknown";

pub fn extism(options: &Options, payloads: &[(&str, Value)]) -> PeerRows {
    match build_and_run(options, payloads) {
        Ok(peer) => peer,
        Err(error) => {
            eprintln!("the Extism peer was not measured: {error:#}");
            PeerRows::skipped(&format!("{error}"))
        }
    }
}

fn build_and_run(options: &Options, payloads: &[(&str, Value)]) -> anyhow::Result<PeerRows> {
    let workspace = crate::workspace_root().join("host/benches/peers/extism");
    let target = crate::target_dir().join("peers/extism");
    ensure_target_installed()?;
    eprintln!("building the Extism peer (the first build compiles its own wasmtime)…");
    cargo(
        &workspace,
        &target,
        &[
            "build",
            "-p",
            "extism-echo",
            "--profile",
            "guest",
            "--target",
            GUEST_TARGET,
        ],
    )?;
    cargo(
        &workspace,
        &target,
        &["build", "--release", "-p", "extism-runner"],
    )?;
    let wasm = target.join(GUEST_TARGET).join("guest/extism_echo.wasm");
    let wasm_kib = std::fs::metadata(&wasm)?.len() as usize / 1024;

    // The runner reads the very bytes cordon's benchmark sends.
    let dir = tempfile::tempdir()?;
    let mut payload_files = Vec::new();
    for (label, value) in payloads {
        let path = dir.path().join(format!("{label}.json"));
        std::fs::write(&path, value.to_string())?;
        let iterations = crate::invoke::iterations_for(options, label);
        payload_files.push(format!("{}:{iterations}", path.display()));
    }
    let output = Command::new(target.join("release/extism-runner"))
        .arg(&wasm)
        .arg(options.iterations(20_000).to_string())
        .args(&payload_files)
        .stderr(Stdio::inherit())
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "the Extism runner failed ({})",
        output.status
    );
    let mut rows = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let row: Value = serde_json::from_str(line)?;
        let number = |key: &str| row[key].as_u64().unwrap_or_default();
        rows.insert(
            row["row"].as_str().unwrap_or_default().to_owned(),
            Stats::from_nanos(number("p50_ns"), number("p99_ns"), number("runs") as usize),
        );
    }
    Ok(PeerRows {
        rows: Ok(rows),
        wasm_kib,
    })
}

fn cargo(workspace: &Path, target: &Path, args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(args)
        .arg("--target-dir")
        .arg(target);
    // Settings of the outer `cargo run` are for cordon's build, not this one.
    for variable in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(variable);
    }
    let status = command.status()?;
    anyhow::ensure!(
        status.success(),
        "`cargo {}` failed in {}",
        args.join(" "),
        workspace.display()
    );
    Ok(())
}

/// `RUSTUP_AUTO_INSTALL=0` machines install nothing on their own.
fn ensure_target_installed() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|t| t == GUEST_TARGET)
    {
        return Ok(());
    }
    let status = Command::new("rustup")
        .args(["target", "add", GUEST_TARGET])
        .status()?;
    anyhow::ensure!(status.success(), "`rustup target add {GUEST_TARGET}` failed");
    Ok(())
}
