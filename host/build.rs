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
    // Each built-in is copied into this script's own OUT_DIR and embedded from there, with
    // the SHA-256 of that copy. The shared guest target directory is rewritten by other build
    // scripts' nested builds (the tests', clippy's), so embedding it in place let the bytes
    // change after their hash was computed: a load would then see a built-in whose bytes do
    // not match its identity.
    //
    // The hash is computed here once instead of on every load: the identity of a connector is
    // the hash of its bytes, and these bytes are compiled into the binary beside it. Hashing a
    // 400 KiB component takes about 0.25 ms, half of a load from the cache.
    let out_dir = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
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
        std::fs::write(out_dir.join(file), &bytes)
            .unwrap_or_else(|e| panic!("cannot copy the built connector {file} into OUT_DIR: {e}"));
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        println!("cargo:rustc-env={variable}={digest}");
    }
    println!("cargo:rustc-env=CORDON_PLUGIN_DIR={}", out_dir.display());
    println!("cargo:rerun-if-changed=build.rs");
}
