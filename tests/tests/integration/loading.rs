use cordon_host::{ArtifactSource, Identity, Limits, LoadError, Runtime, RuntimeConfig};
use cordon_tests::{builtin, fixture, runtime, runtime_config};

async fn load_error(bytes: &[u8]) -> LoadError {
    runtime()
        .load_bytes(bytes, "test.wasm")
        .await
        .expect_err("must be refused")
}

#[tokio::test]
async fn refuses_bytes_that_are_not_wasm() {
    let error = load_error(b"#!/bin/sh\necho hi\n").await;
    assert!(matches!(error, LoadError::NotWasm { .. }), "{error}");
    assert!(error.to_string().contains("not a WebAssembly file"), "{error}");
}

#[tokio::test]
async fn refuses_a_core_module_and_says_how_to_fix_it() {
    let module = wat::parse_str("(module (func (export \"run\")))").expect("wat");
    let error = load_error(&module).await;
    assert!(matches!(error, LoadError::CoreModule { .. }), "{error}");
    assert!(error.to_string().contains("wasm32-wasip2"), "{error}");
}

#[tokio::test]
async fn refuses_a_truncated_component() {
    let bytes = builtin("json-transform");
    let error = load_error(&bytes[..bytes.len() / 2]).await;
    assert!(matches!(error, LoadError::Invalid { .. }), "{error}");
}

#[tokio::test]
async fn refuses_a_file_over_the_size_cap() {
    let runtime = Runtime::new(RuntimeConfig {
        limits: Limits {
            component_bytes: 1024,
            ..Limits::default()
        },
        ..runtime_config()
    })
    .expect("runtime");
    let error = runtime
        .load_file(&fixture("hostile"))
        .await
        .expect_err("too large");
    assert!(matches!(error, LoadError::TooLarge { cap: 1024, .. }), "{error}");
}

#[tokio::test]
async fn a_compile_over_the_time_limit_is_refused_and_the_runtime_still_loads() {
    // No artifact cache, so the load must compile; no real connector compiles in 1 ms.
    let runtime = Runtime::new(RuntimeConfig {
        limits: Limits {
            compile_time: std::time::Duration::from_millis(1),
            ..Limits::default()
        },
        cache_dir: None,
        ..runtime_config()
    })
    .expect("runtime");
    let error = runtime
        .load_file(&fixture("hostile"))
        .await
        .expect_err("compile takes longer than 1 ms");
    assert!(matches!(error, LoadError::CompileTimeout { .. }), "{error}");
    assert!(error.to_string().contains("Limits::compile_time"), "{error}");
    // Nothing was half-registered: with a normal limit the same file loads.
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: None,
        ..runtime_config()
    })
    .expect("runtime");
    runtime
        .load_file(&fixture("hostile"))
        .await
        .expect("loads within the default limit");
}

#[tokio::test]
async fn refuses_another_contract_version_and_names_both() {
    let error = runtime()
        .load_file(&fixture("contract-v2"))
        .await
        .expect_err("wrong version");
    let text = error.to_string();
    assert!(matches!(error, LoadError::WrongContract { .. }), "{text}");
    assert!(
        text.contains("cordon:connector@0.2.0") && text.contains("cordon:connector@0.1.0"),
        "{text}"
    );
}

#[tokio::test]
async fn refuses_a_disallowed_import_and_names_it() {
    let error = runtime()
        .load_file(&fixture("sockets"))
        .await
        .expect_err("sockets import");
    match &error {
        LoadError::DisallowedImport { import, .. } => {
            assert!(import.starts_with("wasi:sockets/"), "{import}")
        }
        other => panic!("expected a disallowed import, got {other}"),
    }
}

#[tokio::test]
async fn refuses_a_missing_file_with_its_path() {
    let error = runtime()
        .load_file("/nonexistent/connector.wasm".as_ref())
        .await
        .expect_err("missing");
    assert!(
        error.to_string().contains("/nonexistent/connector.wasm"),
        "{error}"
    );
}

#[tokio::test]
async fn second_load_comes_from_the_artifact_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = || RuntimeConfig {
        cache_dir: Some(dir.path().to_owned()),
        max_concurrent_instances: 4,
        ..RuntimeConfig::default()
    };
    let first = Runtime::new(config()).expect("runtime");
    let connector = first
        .load_bytes(builtin("json-transform"), "json-transform")
        .await
        .expect("load");
    assert_eq!(connector.load_report().artifact, ArtifactSource::Compiled);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("cache dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".cwasm")).count(),
        1,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".manifest.json")).count(),
        1,
        "{names:?}"
    );

    // A new runtime (a new process, in effect) finds the artifact and does not compile.
    let second = Runtime::new(config()).expect("runtime");
    let again = second
        .load_bytes(builtin("json-transform"), "json-transform")
        .await
        .expect("load");
    assert_eq!(again.load_report().artifact, ArtifactSource::Cache);
    assert_eq!(again.component_hash(), connector.component_hash());
    assert_eq!(again.manifest().id, connector.manifest().id);
    assert_eq!(
        again.manifest().operations.len(),
        connector.manifest().operations.len()
    );
    // The manifest read back from the cache still validates inputs.
    let connection = cordon_tests::connect(&again, cordon_host::Grant::default());
    let call = connection
        .invoke(
            "pick",
            &serde_json::json!({"fields": 1}),
            &cordon_host::CallInfo::default(),
        )
        .await;
    assert!(
        matches!(call.result, Err(cordon_host::InvokeError::InvalidInput { .. })),
        "{:?}",
        call.result
    );
}

/// A connector file's hash is its identity. Once the file has been unchanged for a few
/// seconds, the cache remembers the hash by the file's status, and a new runtime loads the
/// file without reading it; any change, or a missing artifact, goes back to hashing.
#[tokio::test]
async fn an_unchanged_connector_file_is_not_hashed_again() {
    let cache = tempfile::tempdir().expect("tempdir");
    let project = tempfile::tempdir().expect("tempdir");
    let file = project.path().join("connector.wasm");
    std::fs::write(&file, builtin("json-transform")).expect("write");
    let load = || async {
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: Some(cache.path().to_owned()),
            max_concurrent_instances: 4,
            ..RuntimeConfig::default()
        })
        .expect("runtime");
        let connector = runtime.load_file(&file).await.expect("load");
        let report = connector.load_report();
        (report.artifact, report.identity, connector)
    };

    let (artifact, identity, first) = load().await;
    assert_eq!((artifact, identity), (ArtifactSource::Compiled, Identity::Hashed));
    // Written just now, so not remembered yet: a write in the same timestamp tick would not
    // show in the file's status.
    let (artifact, identity, _) = load().await;
    assert_eq!((artifact, identity), (ArtifactSource::Cache, Identity::Hashed));

    std::thread::sleep(cordon_host::FILE_SETTLED + std::time::Duration::from_millis(200));
    let (_, identity, _) = load().await;
    assert_eq!(
        identity,
        Identity::Hashed,
        "the first load after the file settled hashes it"
    );
    let (artifact, identity, remembered) = load().await;
    assert_eq!(
        (artifact, identity),
        (ArtifactSource::Cache, Identity::Remembered)
    );
    assert_eq!(remembered.component_hash(), first.component_hash());
    assert_eq!(remembered.manifest().id, first.manifest().id);

    // Remembered, but the artifact is gone: the file is read, hashed and compiled again.
    for entry in std::fs::read_dir(cache.path()).expect("cache dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            std::fs::remove_file(path).expect("remove artifact");
        }
    }
    let (artifact, identity, recompiled) = load().await;
    assert_eq!((artifact, identity), (ArtifactSource::Compiled, Identity::Hashed));
    assert_eq!(recompiled.component_hash(), first.component_hash());

    // Another connector put in its place: another identity, whatever was remembered.
    let replacement = project.path().join("replacement.wasm");
    std::fs::write(&replacement, builtin("http")).expect("write");
    std::fs::rename(&replacement, &file).expect("rename");
    let (_, identity, replaced) = load().await;
    assert_eq!(identity, Identity::Hashed);
    assert_ne!(replaced.component_hash(), first.component_hash());
    assert_eq!(replaced.manifest().id.as_str(), "http");
}

#[tokio::test]
async fn built_in_manifests_are_valid_and_request_what_they_should() {
    let runtime = runtime();
    let transform = runtime
        .load_bytes(builtin("json-transform"), "json-transform")
        .await
        .expect("load");
    assert!(
        transform.manifest().hosts.is_empty(),
        "json-transform must need no network"
    );
    assert!(transform.manifest().secrets.is_empty());

    let http = runtime.load_bytes(builtin("http"), "http").await.expect("load");
    let hosts: Vec<_> = http
        .manifest()
        .hosts
        .iter()
        .map(|h| h.as_str().to_owned())
        .collect();
    assert_eq!(hosts, ["*://*:*"]);

    let github = runtime
        .load_bytes(builtin("github"), "github")
        .await
        .expect("load");
    let ops: Vec<_> = github
        .manifest()
        .operations
        .iter()
        .map(|o| o.id.as_str().to_owned())
        .collect();
    assert_eq!(ops, ["list_issues", "create_issue", "new_issue"]);
    assert!(
        github
            .manifest()
            .parameters
            .iter()
            .any(|p| p.name.as_str() == "base_url")
    );
}
