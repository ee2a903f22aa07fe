//! Builds the test-only connectors in `tests/fixtures/` for wasm32-wasip2.

fn main() {
    let manifest_dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir.parent().unwrap_or(&manifest_dir).to_owned();
    let dir = cordon_guest_build::build_guests(
        &root,
        &[
            "cordon-fixture-hostile",
            "cordon-fixture-sockets",
            "cordon-fixture-contract-v2",
            "cordon-fixture-mailer",
            "cordon-fixture-mailer-v2",
        ],
    );
    println!("cargo:rustc-env=CORDON_FIXTURE_DIR={}", dir.display());
    println!("cargo:rerun-if-changed=build.rs");
}
