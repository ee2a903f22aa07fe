//! Used by build scripts to build guest crates (connectors) for `wasm32-wasip2`, so that a
//! user never runs a separate build step: `cargo build`, `cargo test` and `cargo run` of the
//! host build the connectors they need.
//!
//! The nested `cargo build` uses its own target directory (`target/guest`), so it never waits
//! on the outer build's lock, and the `guest` profile, so it is optimized whatever profile the
//! host is built with. It never compiles wasmtime: guests do not depend on it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The rustc target guests are built for.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// Builds `packages` of the workspace at `workspace_root` and returns the directory holding
/// the `.wasm` files (named after each crate, with `-` turned into `_`).
///
/// Panics with an explanation when the build fails: this runs inside a build script, where a
/// panic is how a failure is reported.
pub fn build_guests(workspace_root: &Path, packages: &[&str]) -> PathBuf {
    let dir = build_guests_quietly(workspace_root, packages);
    // The root manifest too: its workspace dependencies' features and the `guest` profile
    // change the guests' bytes without touching Cargo.lock.
    for watched in [
        "plugins",
        "sdk-guest",
        "wit",
        "tests/fixtures",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        let path = workspace_root.join(watched);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    dir
}

/// [`build_guests`] without the `cargo:` lines a build script prints, for programs (the
/// benchmark) that build a guest at run time.
pub fn build_guests_quietly(workspace_root: &Path, packages: &[&str]) -> PathBuf {
    let target_root = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("target"));
    let target_dir = target_root.join("guest");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for package in packages {
        // `cargo rustc --crate-type cdylib`: guest crates are plain libraries in the
        // workspace (so `cargo test --workspace` can build them natively, where a cdylib with
        // component export names would not link) and become components only here.
        let mut command = Command::new(&cargo);
        command
            .current_dir(workspace_root)
            .args(["rustc", "-p", package, "--lib", "--crate-type", "cdylib"])
            .args(["--profile", "guest", "--target", GUEST_TARGET, "--target-dir"])
            .arg(&target_dir);
        // The outer build's compiler settings are for the host target; clippy's wrapper and
        // the outer RUSTFLAGS must not leak into the guest build.
        for variable in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_BUILD_TARGET",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_RUSTFLAGS",
        ] {
            command.env_remove(variable);
        }
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("cannot run cargo to build the connector {package}: {e}"));
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let hint = if stderr.contains("may not be installed")
                || stderr.contains("can't find crate for `core`")
            {
                format!("\nthe {GUEST_TARGET} target is missing: run `rustup target add {GUEST_TARGET}`")
            } else {
                String::new()
            };
            panic!("building the connector {package} for {GUEST_TARGET} failed:\n{stderr}{hint}");
        }
    }
    target_dir.join(GUEST_TARGET).join("guest")
}
