//! Hand-made connector components for the sandbox cases no Rust guest can express: a stub
//! core module for the contract's world (from `wit/`, every export `unreachable`), edited as
//! text, then wrapped into a component the way `wasm32-wasip2` builds are. The result meets
//! the contract's names and types, so the host loads it as far as it would a real connector.

use std::path::Path;

use wit_component::{ComponentEncoder, StringEncoding, embed_component_metadata};
use wit_parser::{LiftLowerAbi, ManglingAndAbi, Resolve};

/// The stub core module of the `plugin` world, as WebAssembly text.
pub fn stub_module_text() -> String {
    stub_text_for(&[])
}

/// The stub of a world that imports, beside the contract, each `(package, interface)` of
/// `imports`: WIT text of packages the contract does not have (written for the test, a
/// subset of the real interface is enough for an import).
fn stub_text_for(imports: &[(&str, &str)]) -> String {
    let (resolve, world) = world_with(imports);
    let module = wit_component::dummy_module(&resolve, world, ManglingAndAbi::Legacy(LiftLowerAbi::Sync));
    wasmprinter::print_bytes(module).expect("print the stub module")
}

/// A component from the core module `text` (the stub, edited).
pub fn component_from(text: &str) -> Vec<u8> {
    component_from_for(text, &[])
}

fn component_from_for(text: &str, imports: &[(&str, &str)]) -> Vec<u8> {
    let (resolve, world) = world_with(imports);
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
    component_importing(&[], export_suffix, |_| body.to_owned(), extra)
}

/// [`component_with`] for a world that also imports `imports` (see [`stub_text_for`]);
/// `body` gets the stub's text, to look up the imports' function indexes with
/// [`import_index`].
pub fn component_importing(
    imports: &[(&str, &str)],
    export_suffix: &str,
    body: impl FnOnce(&str) -> String,
    extra: &str,
) -> Vec<u8> {
    let text = stub_text_for(imports);
    let body = body(&text);
    let body = body.as_str();
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
    component_from_for(
        &format!("{}\n{extra}\n{}", &edited[..closing], &edited[closing..]),
        imports,
    )
}

/// The function index of the stub's import `name` (such as `"subscribe-duration"`).
pub fn import_index(text: &str, name: &str) -> String {
    text.lines()
        .find(|l| l.contains("(import ") && l.contains(&format!("\"{name}\" (func (;")))
        .and_then(|l| l.split("(func (;").nth(1))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no import {name:?} in:\n{text}"))
        .to_owned()
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

/// The contract's `plugin` world, or with `imports` a world that includes it and imports
/// them too. `imports` are `(package WIT, interface to import)`, dependencies first.
fn world_with(imports: &[(&str, &str)]) -> (Resolve, wit_parser::WorldId) {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let mut resolve = Resolve::default();
    let (contract, _) = resolve.push_path(&wit).expect("the contract parses");
    if imports.is_empty() {
        let world = resolve
            .select_world(&[contract], Some("plugin"))
            .expect("the plugin world");
        return (resolve, world);
    }
    for (index, (package, _)) in imports.iter().enumerate() {
        resolve
            .push_str(format!("import{index}.wit"), package)
            .unwrap_or_else(|e| panic!("{e:#}\n{package}"));
    }
    let lines: Vec<String> = imports
        .iter()
        .map(|(_, interface)| format!("  import {interface};"))
        .collect();
    let world = format!(
        "package test:hand-made;\nworld plugin-and-more {{\n  include cordon:connector/plugin@0.1.0;\n{}\n}}\n",
        lines.join("\n")
    );
    let package = resolve
        .push_str("world.wit", &world)
        .unwrap_or_else(|e| panic!("{e:#}\n{world}"));
    let world = resolve
        .select_world(&[package], Some("plugin-and-more"))
        .expect("the world");
    (resolve, world)
}
