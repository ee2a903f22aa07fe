//! Builds the connectors in `plugins/` for wasm32-wasip2 and tells the crate where they are,
//! so the `cordon` binary can embed them as built-in connectors.

fn main() {
    let manifest_dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir.parent().unwrap_or(&manifest_dir).to_owned();
    let dir = cordon_guest_build::build_guests(
        &root,
        &[
            "cordon-plugin-json-transform",
            "cordon-plugin-http",
            "cordon-plugin-github",
        ],
    );
    println!("cargo:rustc-env=CORDON_PLUGIN_DIR={}", dir.display());
    println!("cargo:rerun-if-changed=build.rs");
}
