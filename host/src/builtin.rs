//! The connectors shipped in `plugins/`, built for wasm32-wasip2 by `build.rs` and embedded,
//! so `cordon` can use them by name with no separate build step or file to carry around.

/// A built-in connector: the name users write, the component bytes, and their SHA-256 (hex),
/// computed by `build.rs` so that loading a built-in need not hash it.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub name: &'static str,
    pub component: &'static [u8],
    pub sha256: &'static str,
}

/// Every built-in connector.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "json-transform",
        component: include_bytes!(concat!(
            env!("CORDON_PLUGIN_DIR"),
            "/cordon_plugin_json_transform.wasm"
        )),
        sha256: env!("CORDON_PLUGIN_SHA256_JSON_TRANSFORM"),
    },
    Builtin {
        name: "http",
        component: include_bytes!(concat!(env!("CORDON_PLUGIN_DIR"), "/cordon_plugin_http.wasm")),
        sha256: env!("CORDON_PLUGIN_SHA256_HTTP"),
    },
    Builtin {
        name: "github",
        component: include_bytes!(concat!(env!("CORDON_PLUGIN_DIR"), "/cordon_plugin_github.wasm")),
        sha256: env!("CORDON_PLUGIN_SHA256_GITHUB"),
    },
];

/// The built-in connector called `name`.
pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    #[test]
    fn build_time_hashes_match_the_bytes() {
        for builtin in super::BUILTINS {
            assert_eq!(
                builtin.sha256,
                hex::encode(Sha256::digest(builtin.component)),
                "{}",
                builtin.name
            );
        }
    }
}
