//! Runs the real `cordon` binary end to end.

use std::process::Command;

fn cordon(args: &[&str]) -> (i32, String, String) {
    let cache = std::env::temp_dir().join("cordon-cli-test-cache");
    let output = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(args)
        .env("CORDON_CACHE_DIR", &cache)
        .output()
        .expect("run cordon");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn inspect_prints_what_a_connector_asks_for() {
    let (code, out, err) = cordon(&["connector", "inspect", "github"]);
    assert_eq!(code, 0, "{err}");
    for expected in [
        "github 0.1.0",
        "cordon:connector@0.1.0",
        "create_issue",
        "*://*:*",
        "token",
        "base_url",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }

    let (code, out, err) = cordon(&["connector", "inspect", "json-transform", "--json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("inspect --json prints JSON");
    assert_eq!(json["id"], "json-transform");
    assert_eq!(json["contract"], "cordon:connector@0.1.0");
    assert_eq!(json["component_hash"].as_str().map(str::len), Some(64));
    assert_eq!(json["hosts"], serde_json::json!([]));
    assert!(json["operations"][0]["input_schema"].is_object());
}

#[test]
fn invoke_prints_the_output() {
    let (code, out, err) = cordon(&[
        "connector",
        "invoke",
        "json-transform",
        "pick",
        "--input",
        r#"{"value": [{"a": 1, "b": 2}], "fields": ["a"]}"#,
    ]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(json, serde_json::json!([{"a": 1}]));
}

#[test]
fn invoke_reads_input_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input.json");
    std::fs::write(&input, r#"{"text": "x,y\n1,2"}"#).expect("write");
    let arg = format!("@{}", input.display());
    let (code, out, err) = cordon(&[
        "connector",
        "invoke",
        "json-transform",
        "parse_csv",
        "--input",
        &arg,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"x\": 1"), "{out}");
}

#[test]
fn bad_input_exits_non_zero_with_a_clear_error() {
    let (code, _, err) = cordon(&[
        "connector",
        "invoke",
        "json-transform",
        "pick",
        "--input",
        "{not json",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--input") && err.contains("not valid JSON"), "{err}");

    let (code, _, err) = cordon(&["connector", "invoke", "json-transform", "pick", "--input", "{}"]);
    assert_eq!(code, 2);
    assert!(err.contains("does not fit its schema"), "{err}");

    let (code, _, err) = cordon(&["connector", "inspect", "no-such-thing"]);
    assert_eq!(code, 2);
    assert!(err.contains("neither a file nor a built-in"), "{err}");
}

#[test]
fn a_denied_request_fails_the_call_and_is_audited() {
    let (code, _, err) = cordon(&[
        "connector",
        "invoke",
        "http",
        "request",
        "--input",
        r#"{"method": "GET", "uri": "https://example.com/"}"#,
        "--grant-host",
        "https://api.example.org",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cordon::audit") && err.contains("https://example.com:443"),
        "{err}"
    );
    assert!(err.contains("not granted"), "{err}");
}

#[test]
fn expr_evaluates_a_template_against_a_context_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let context = dir.path().join("context.json");
    std::fs::write(
        &context,
        r#"{"parameters": {"name": "Ada"}, "actions": {"Get": {"outputs": {"body": {"n": 41}}}}}"#,
    )
    .expect("write context");
    let context = context.to_str().expect("utf-8 path");

    let (code, out, err) = cordon(&["expr", "Hi @{parameters('name')}", "--context", context]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "\"Hi Ada\"");

    let (code, out, err) = cordon(&["expr", "@add(body('Get').n, 1)", "--context", context]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "42");

    let (code, _, err) = cordon(&["expr", "@add(1)"]);
    assert_eq!(code, 2);
    assert!(err.contains("add takes 2 arguments, got 1"), "{err}");

    let (code, _, err) = cordon(&["expr", "@body('Missing')", "--context", context]);
    assert_eq!(code, 1);
    assert!(err.contains("\"Missing\", which has not run"), "{err}");
}
