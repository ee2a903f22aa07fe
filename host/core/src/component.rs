//! What the loader checks of a connector file before it spends time compiling it: the
//! header, and that the component's own imports and exports are the contract's.
//!
//! This is parsing only (wasmparser reads the sections; nothing is validated in depth):
//! wasmtime validates the whole component when it compiles it. Checking the names first
//! means a component that imports sockets, or speaks another contract version, is refused
//! in microseconds, before Cranelift ever sees it. The same [`check_contract`] runs again on
//! the compiled component's type, so artifacts loaded from the cache are held to it too.

use wasmparser::{Parser, Payload};

/// The contract version this host implements.
pub const CONTRACT_VERSION: &str = "0.1.0";
/// The package every contract interface lives in.
pub const CONTRACT_PACKAGE: &str = "cordon:connector";

/// Why a file is not a connector this host can load. The loader adds the file's origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComponentProblem {
    #[error("it is not WebAssembly (no \\0asm header)")]
    NotWasm,
    #[error("it is a core WebAssembly module, not a component")]
    CoreModule,
    #[error("unknown WebAssembly version or layer in the header")]
    UnknownLayer,
    #[error("it cannot be parsed: {0}")]
    Malformed(String),
    #[error("it was built for contract {found}, and this host implements {expected}")]
    WrongContract { found: String, expected: String },
    #[error("it imports {0:?}, which connectors may not use")]
    DisallowedImport(String),
    #[error("it does not export {0}")]
    NotAConnector(String),
}

/// Checks the 8-byte header: a component, not a core module or anything else.
pub fn check_header(bytes: &[u8]) -> Result<(), ComponentProblem> {
    if !bytes.starts_with(b"\0asm") {
        return Err(ComponentProblem::NotWasm);
    }
    if Parser::is_core_wasm(bytes) {
        return Err(ComponentProblem::CoreModule);
    }
    if !Parser::is_component(bytes) {
        return Err(ComponentProblem::UnknownLayer);
    }
    Ok(())
}

/// The names a component imports and exports at its top level (not those of the modules
/// and components nested inside it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopLevelNames {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// Reads the top-level import and export names of a component.
pub fn top_level_names(bytes: &[u8]) -> Result<TopLevelNames, ComponentProblem> {
    let malformed = |e: wasmparser::BinaryReaderError| ComponentProblem::Malformed(e.to_string());
    let mut names = TopLevelNames::default();
    // Nested modules and components come through the same payload stream, each closed by
    // its own `End`; only depth 0 is the component itself.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(malformed)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    names
                        .imports
                        .push(import.map_err(malformed)?.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    names
                        .exports
                        .push(export.map_err(malformed)?.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

/// The header, then the contract, of a file about to be compiled.
pub fn precheck(bytes: &[u8]) -> Result<(), ComponentProblem> {
    check_header(bytes)?;
    let names = top_level_names(bytes)?;
    check_contract(
        names.imports.iter().map(String::as_str),
        names.exports.iter().map(String::as_str),
    )
}

/// Checks that a component exports this contract's `connector` interface and imports only
/// what [`import_allowed`] allows. A contract interface of another version, imported or
/// exported, is reported as the wrong contract (the clearer error) before anything else.
pub fn check_contract<'a>(
    imports: impl IntoIterator<Item = &'a str>,
    exports: impl IntoIterator<Item = &'a str>,
) -> Result<(), ComponentProblem> {
    let expected_export = format!("{CONTRACT_PACKAGE}/connector@{CONTRACT_VERSION}");
    let mut exports_contract = false;
    let mut other_version = None;
    for name in exports {
        if name == expected_export {
            exports_contract = true;
        } else if let Some(version) = name.strip_prefix(&format!("{CONTRACT_PACKAGE}/connector@")) {
            other_version = Some(version.to_owned());
        }
    }
    for name in imports {
        if let Some(rest) = name.strip_prefix(&format!("{CONTRACT_PACKAGE}/"))
            && let Some((_, version)) = rest.split_once('@')
            && version != CONTRACT_VERSION
        {
            return Err(wrong_contract(version));
        }
        if !import_allowed(name) {
            return Err(ComponentProblem::DisallowedImport(name.to_owned()));
        }
    }
    match (exports_contract, other_version) {
        (true, _) => Ok(()),
        (false, Some(version)) => Err(wrong_contract(&version)),
        (false, None) => Err(ComponentProblem::NotAConnector(expected_export)),
    }
}

fn wrong_contract(version: &str) -> ComponentProblem {
    ComponentProblem::WrongContract {
        found: format!("{CONTRACT_PACKAGE}@{version}"),
        expected: format!("{CONTRACT_PACKAGE}@{CONTRACT_VERSION}"),
    }
}

/// The imports a connector may have. WASI is limited to what Rust's standard library needs,
/// all backed by an empty context; sockets and HTTP from WASI are refused outright.
pub fn import_allowed(name: &str) -> bool {
    const CONTRACT: [&str; 4] = ["types", "http", "secrets", "log"];
    const WASI: [&str; 5] = [
        "wasi:io/",
        "wasi:cli/",
        "wasi:clocks/",
        "wasi:random/",
        "wasi:filesystem/",
    ];
    if let Some(rest) = name.strip_prefix("cordon:connector/") {
        return rest
            .split_once('@')
            .is_some_and(|(iface, version)| CONTRACT.contains(&iface) && version == CONTRACT_VERSION);
    }
    WASI.iter().any(|prefix| name.starts_with(prefix)) && name.contains("@0.2.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_allowlist() {
        for ok in [
            "cordon:connector/http@0.1.0",
            "cordon:connector/types@0.1.0",
            "wasi:io/streams@0.2.6",
            "wasi:cli/environment@0.2.0",
            "wasi:filesystem/preopens@0.2.3",
        ] {
            assert!(import_allowed(ok), "{ok}");
        }
        for bad in [
            "wasi:sockets/tcp@0.2.0",
            "wasi:http/outgoing-handler@0.2.0",
            "cordon:connector/admin@0.1.0",
            "cordon:connector/http@0.2.0",
            "wasi:io/streams@0.3.0",
            "my:own/thing",
        ] {
            assert!(!import_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn headers() {
        let cases: [(&[u8], Result<(), ComponentProblem>); 5] = [
            (b"", Err(ComponentProblem::NotWasm)),
            (b"\x7fELF\x02\x01\x01\0", Err(ComponentProblem::NotWasm)),
            (b"\0asm\x01\0\0\0", Err(ComponentProblem::CoreModule)),
            (b"\0asm\x0d\0\x01\0", Ok(())),
            (b"\0asm\x0d\0\x07\0", Err(ComponentProblem::UnknownLayer)),
        ];
        for (bytes, expected) in cases {
            assert_eq!(check_header(bytes), expected, "{bytes:?}");
        }
    }

    #[test]
    fn contract_cases() {
        let export = "cordon:connector/connector@0.1.0";
        let log = "cordon:connector/log@0.1.0";
        assert_eq!(check_contract([log], [export]), Ok(()));
        assert!(matches!(
            check_contract(["wasi:sockets/tcp@0.2.0"], [export]),
            Err(ComponentProblem::DisallowedImport(name)) if name == "wasi:sockets/tcp@0.2.0"
        ));
        // Another version is the wrong contract, whether imported or exported.
        for (imports, exports) in [
            (vec!["cordon:connector/log@0.2.0"], vec![export]),
            (vec![], vec!["cordon:connector/connector@0.2.0"]),
        ] {
            let error = check_contract(imports, exports).unwrap_err();
            assert!(
                matches!(&error, ComponentProblem::WrongContract { found, .. } if found == "cordon:connector@0.2.0"),
                "{error}"
            );
        }
        assert!(matches!(
            check_contract([], []),
            Err(ComponentProblem::NotAConnector(_))
        ));
    }

    #[test]
    fn names_of_a_truncated_component_are_malformed_not_a_panic() {
        // A component header followed by a section that claims more bytes than there are.
        let bytes = b"\0asm\x0d\0\x01\0\x0b\xff\x01\x00";
        assert!(matches!(
            top_level_names(bytes),
            Err(ComponentProblem::Malformed(_))
        ));
        assert_eq!(
            top_level_names(b"\0asm\x0d\0\x01\0"),
            Ok(TopLevelNames::default())
        );
    }
}
