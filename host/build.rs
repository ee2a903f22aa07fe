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
    // Each built-in's SHA-256, computed here once instead of on every load: the identity of a
    // connector is the hash of its bytes, and these bytes are compiled into the binary beside
    // it. Hashing a 400 KiB component takes about 0.25 ms, half of a load from the cache.
    for (file, variable) in [
        (
            "cordon_plugin_json_transform.wasm",
            "CORDON_PLUGIN_SHA256_JSON_TRANSFORM",
        ),
        ("cordon_plugin_http.wasm", "CORDON_PLUGIN_SHA256_HTTP"),
        ("cordon_plugin_github.wasm", "CORDON_PLUGIN_SHA256_GITHUB"),
    ] {
        let bytes = std::fs::read(dir.join(file))
            .unwrap_or_else(|e| panic!("cannot read the built connector {file}: {e}"));
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        println!("cargo:rustc-env={variable}={digest}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
