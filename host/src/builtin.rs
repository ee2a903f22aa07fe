//! The connectors shipped in `plugins/`, built for wasm32-wasip2 by `build.rs` and embedded,
//! so `cordon` can use them by name with no separate build step or file to carry around.

/// A built-in connector: the name users write, and the component bytes.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub name: &'static str,
    pub component: &'static [u8],
}

/// Every built-in connector.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "json-transform",
        component: include_bytes!(concat!(
            env!("CORDON_PLUGIN_DIR"),
            "/cordon_plugin_json_transform.wasm"
        )),
    },
    Builtin {
        name: "http",
        component: include_bytes!(concat!(env!("CORDON_PLUGIN_DIR"), "/cordon_plugin_http.wasm")),
    },
    Builtin {
        name: "github",
        component: include_bytes!(concat!(env!("CORDON_PLUGIN_DIR"), "/cordon_plugin_github.wasm")),
    },
];

/// The built-in connector called `name`.
pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}
