//! Hand-made connector components for the sandbox cases no Rust guest can express: a stub
//! core module for the contract's world (from `wit/`, every export `unreachable`), edited as
//! text, then wrapped into a component the way `wasm32-wasip2` builds are. The result meets
//! the contract's names and types, so the host loads it as far as it would a real connector.

use std::path::Path;

use wit_component::{ComponentEncoder, StringEncoding, embed_component_metadata};
use wit_parser::{LiftLowerAbi, ManglingAndAbi, Resolve};

/// The stub core module of the `plugin` world, as WebAssembly text.
pub fn stub_module_text() -> String {
    let (resolve, world) = contract();
    let module = wit_component::dummy_module(&resolve, world, ManglingAndAbi::Legacy(LiftLowerAbi::Sync));
    wasmprinter::print_bytes(module).expect("print the stub module")
}

/// A component from the core module `text` (the stub, edited).
pub fn component_from(text: &str) -> Vec<u8> {
    let (resolve, world) = contract();
    let mut module = wat::parse_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8).expect("embed the world");
    ComponentEncoder::default()
        .module(&module)
        .expect("a module for the world")
        .validate(true)
        .encode()
        .expect("encode the component")
}

/// The stub with the body of the core function exported as `export_suffix` (for example
/// `#describe`) replaced by `body`, and `extra` fields added to the module.
pub fn component_with(export_suffix: &str, body: &str, extra: &str) -> Vec<u8> {
    let text = stub_module_text();
    // `(export "cordon:connector/connector@0.1.0#describe" (func 4))`
    let index = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("(export \"cordon:") && l.contains(&format!("{export_suffix}\" (func ")))
        .and_then(|l| l.rsplit("(func ").next())
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no exported function {export_suffix:?} in:\n{text}"));
    let edited = replace_body(&text, index, body);
    let closing = edited.rfind(')').expect("module closes");
    component_from(&format!("{}\n{extra}\n{}", &edited[..closing], &edited[closing..]))
}

/// Replaces the body (`unreachable`) of function number `index` with `body`.
fn replace_body(text: &str, index: &str, body: &str) -> String {
    let marker = format!("(func (;{index};)");
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        if line.trim_start().starts_with(&marker) {
            // The stub's body is one `unreachable` line after the signature.
            if let Some(next) = lines.peek()
                && next.trim() == "unreachable"
            {
                lines.next();
                out.push_str(body);
                out.push('\n');
            }
        }
    }
    out
}

fn contract() -> (Resolve, wit_parser::WorldId) {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_path(&wit).expect("the contract parses");
    let world = resolve.select_world(&[package], Some("plugin")).expect("the plugin world");
    (resolve, world)
}
