//! Measures cordon next to the floor (native Rust) and its peers (Extism, plain wasmtime) and
//! prints every table of BENCHMARKS.md.
//!
//! Run: `cargo run -p cordon-host --example bench`. Options:
//! - `--quick`: fewer iterations (a smoke run, not figures to publish);
//! - `--only SECTION[,SECTION…]`: some of `load`, `invoke`, `workflow`, `http`, `memory`,
//!   `tenants`, and `http-alone`, which runs only when named (the HTTP ways one at a time,
//!   with their CPU per request: a diagnostic, not a table of BENCHMARKS.md's main run);
//! - `--way native|fresh|reused`: `http-alone` measures only that way, so a profiler or
//!   `strace -c` attached to the run sees one way's work alone;
//! - `--no-extism`: leave out the Extism peer (it builds a second wasmtime the first time,
//!   into `target/peers/extism`, which takes several minutes).
//!
//! It uses the dev profile on purpose, so it shares the one wasmtime build with the tests;
//! dependencies and cordon-host are optimized in that profile (see the root Cargo.toml), and
//! the Extism peer is built with the same optimization level.

mod http;
mod invoke;
mod memory;
mod peers;
mod stats;
mod tenants;
mod workflow;

use std::path::PathBuf;

/// The allocator the `cordon` binary uses (see its `main.rs`), so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What the command line asked for.
#[derive(Debug)]
pub struct Options {
    pub quick: bool,
    pub extism: bool,
    sections: Option<Vec<String>>,
    /// The one HTTP way `http-alone` measures (`--way`); all three when `None`.
    pub way: Option<String>,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let mut options = Options {
            quick: false,
            extism: true,
            sections: None,
            way: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--no-extism" => options.extism = false,
                "--only" => {
                    let list = args
                        .next()
                        .ok_or_else(|| anyhow::anyhow!("--only needs a list, e.g. --only invoke,http"))?;
                    let sections: Vec<String> = list.split(',').map(str::to_owned).collect();
                    for section in &sections {
                        anyhow::ensure!(
                            SECTIONS.contains(&section.as_str()),
                            "unknown section {section:?}; the sections are {}",
                            SECTIONS.join(", ")
                        );
                    }
                    options.sections = Some(sections);
                }
                "--way" => {
                    let way = args.next().unwrap_or_default();
                    anyhow::ensure!(
                        http::WAYS.contains(&way.as_str()),
                        "--way needs one of {}, e.g. --only http-alone --way fresh",
                        http::WAYS.join(", ")
                    );
                    options.way = Some(way);
                }
                other => anyhow::bail!(
                    "unknown argument {other:?}; use --quick, --no-extism, --way or --only {}",
                    SECTIONS.join(",")
                ),
            }
        }
        Ok(options)
    }

    fn wants(&self, section: &str) -> bool {
        self.sections
            .as_ref()
            .is_none_or(|list| list.iter().any(|s| s == section))
    }

    /// Sections outside the default run: only when `--only` names them.
    fn names(&self, section: &str) -> bool {
        self.sections
            .as_ref()
            .is_some_and(|list| list.iter().any(|s| s == section))
    }

    /// `full` iterations, or a tenth of them with `--quick`.
    pub fn iterations(&self, full: usize) -> usize {
        if self.quick { (full / 10).max(3) } else { full }
    }
}

const SECTIONS: [&str; 7] = [
    "load",
    "invoke",
    "workflow",
    "http",
    "memory",
    "tenants",
    "http-alone",
];

/// The workspace root, for the peer and fixture builds.
pub fn workspace_root() -> PathBuf {
    let host = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    host.parent().map(PathBuf::from).unwrap_or(host)
}

/// Where cargo puts build output (respects `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    print_machine();
    if options.wants("load") || options.wants("invoke") {
        invoke::run(&options).await?;
    }
    if options.wants("workflow") {
        workflow::run(&options).await?;
    }
    if options.wants("http") {
        http::run(&options).await?;
    }
    if options.names("http-alone") {
        http::alone(&options).await?;
    }
    if options.wants("memory") {
        memory::run(&options).await?;
    }
    if options.wants("tenants") {
        tenants::run(&options).await?;
    }
    Ok(())
}

fn print_machine() {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    println!(
        "machine: {cores} cores, {model}, Linux {}, profile dev (opt-level 2)",
        kernel.trim()
    );
}
