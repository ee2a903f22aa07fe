//! Runs the real `cordon` binary end to end.

use std::process::Command;

/// The id of the run `cordon run` printed that it started.
fn started_run_id(out: &str) -> &str {
    out.lines()
        .find_map(|line| line.strip_prefix("starting run "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no run started in:\n{out}"))
}

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

/// A loopback server for the resume test: `/first` answers at once; `/hang` hangs on its first
/// call (the test kills `cordon` while it waits) and answers at once afterwards.
/// Serves `app` on 127.0.0.1 (an ephemeral port) from a thread of its own, for as long as the
/// test process lives: the tests here are synchronous, the binary under test a process.
fn serve_on_a_thread(app: axum::Router) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = axum::serve(listener, app).await;
        });
    });
    addr
}

fn start_resume_server() -> (std::net::SocketAddr, std::sync::Arc<std::sync::Mutex<(u32, u32)>>) {
    use std::sync::{Arc, Mutex};
    let counts = Arc::new(Mutex::new((0u32, 0u32)));
    let first = counts.clone();
    let hang = counts.clone();
    let app = axum::Router::new()
        .route(
            "/first",
            axum::routing::any(move || {
                let counts = first.clone();
                async move {
                    counts.lock().expect("lock").0 += 1;
                    "first"
                }
            }),
        )
        .route(
            "/hang",
            axum::routing::any(move || {
                let counts = hang.clone();
                async move {
                    let n = {
                        let mut c = counts.lock().expect("lock");
                        c.1 += 1;
                        c.1
                    };
                    if n == 1 {
                        tokio::time::sleep(std::time::Duration::from_secs(120)).await;
                    }
                    "done"
                }
            }),
        );
    (serve_on_a_thread(app), counts)
}

#[test]
fn a_run_killed_with_sigkill_resumes_without_repeating_finished_actions() {
    use cordon_host::db::{Db, SqliteDb, Status};

    let (addr, counts) = start_resume_server();
    let dir = tempfile::tempdir().expect("temp dir");
    let project = dir.path();
    std::fs::write(
        project.join("connections.json"),
        serde_json::json!({"serviceProviderConnections": {}, "http": {"grant": {"hosts": [format!("http://{addr}")]}}})
            .to_string(),
    )
    .expect("connections.json");
    std::fs::create_dir(project.join("w")).expect("workflow dir");
    let call = |path: &str| serde_json::json!({"type": "Http", "inputs": {"method": "GET", "uri": format!("http://{addr}{path}")}});
    let workflow = serde_json::json!({"kind": "Stateful", "definition": {
    "triggers": {"manual": {"type": "Request"}},
    "actions": {
        "First": call("/first"),
        "Second": {"type": "Http", "inputs": call("/hang")["inputs"], "runAfter": {"First": ["Succeeded"]}},
        "Third": {"type": "Compose", "inputs": "@body('First')", "runAfter": {"Second": ["Succeeded"]}}
    }}});
    std::fs::write(project.join("w/workflow.json"), workflow.to_string()).expect("workflow.json");
    let db_path = project.join("history.db");
    let cache = std::env::temp_dir().join("cordon-cli-test-cache");
    let command = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cordon"));
        c.args([
            "run",
            project.to_str().expect("utf-8"),
            "w",
            "--db",
            db_path.to_str().expect("utf-8"),
        ])
        .env("CORDON_CACHE_DIR", &cache);
        c
    };

    let mut child = command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start cordon run");
    // Wait (bounded) until the run is inside Second's request.
    let mut waited = 0;
    while counts.lock().expect("lock").1 == 0 {
        assert!(waited < 1200, "cordon run never reached the second action");
        assert!(
            child.try_wait().expect("poll child").is_none(),
            "cordon run exited early"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    }
    child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
    child.wait().expect("reap");

    let (run_id, first_ended) = {
        let db = SqliteDb::open(&db_path).expect("history survives the kill");
        let runs = db.list_runs(&Default::default()).expect("runs");
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, Status::Running);
        let actions = db.actions(&runs[0].id, false).expect("actions");
        let first = actions
            .iter()
            .find(|a| a.name == "First")
            .expect("First recorded");
        assert_eq!(
            first.status,
            Status::Succeeded,
            "First's result was recorded before the kill"
        );
        let second = actions
            .iter()
            .find(|a| a.name == "Second")
            .expect("Second recorded");
        assert_eq!(second.status, Status::Running);
        (runs[0].id.clone(), first.ended_at)
    };

    let output = command().output().expect("cordon run again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("resumed interrupted run {run_id} of w: Succeeded")),
        "{stdout}"
    );

    let db = SqliteDb::open(&db_path).expect("history");
    let resumed = db.run(&run_id).expect("resumed run");
    assert_eq!(resumed.status, Status::Succeeded);
    let actions = db.actions(&run_id, false).expect("actions");
    let by_name = |n: &str| actions.iter().find(|a| a.name == n).expect("action").clone();
    assert_eq!(by_name("First").attempts, 1);
    assert_eq!(
        by_name("First").ended_at,
        first_ended,
        "First's record was not rewritten"
    );
    assert_eq!(by_name("Second").attempts, 2, "the interrupted attempt counts");
    let second_attempts = db.attempts(&run_id, &by_name("Second").path).expect("attempts");
    assert_eq!(
        second_attempts[0].error.as_ref().map(|e| e["code"].clone()),
        Some(serde_json::json!("Interrupted"))
    );
    assert_eq!(by_name("Third").outputs, Some(serde_json::json!("first")));
    // One /first call per run: the original, and the new run the second command started. The
    // resumed run did not call it again.
    assert_eq!(db.list_runs(&Default::default()).expect("runs").len(), 2);
    assert_eq!(counts.lock().expect("lock").0, 2);
}

#[test]
fn validate_run_and_runs_work_on_the_quickstart() {
    let quickstart = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/quickstart");
    let trigger = concat!(
        "@",
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/quickstart/orders.json"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("history.db");
    let db = db.to_str().expect("utf-8");

    let (code, out, err) = cordon(&["validate", quickstart]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok: 1 workflow, 1 connection"), "{out}");

    let (code, out, err) = cordon(&["run", quickstart, "orders", "--trigger-body", trigger, "--db", db]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("2 of 5 orders are at least 100, worth $420.50"),
        "{out}"
    );
    assert!(
        out.contains("ok Succeeded For_each_order[3]/Add_to_total"),
        "{out}"
    );

    let runs_list = |extra: &[&str]| {
        let mut args = vec!["runs", "list", "--project", quickstart, "--db", db];
        args.extend_from_slice(extra);
        cordon(&args)
    };
    let (code, out, _) = runs_list(&["--json"]);
    assert_eq!(code, 0);
    let runs: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let run_id = runs[0]["id"].as_str().expect("run id").to_owned();
    assert_eq!(runs[0]["status"], "Succeeded");

    let (code, out, _) = cordon(&["runs", "show", &run_id, "--project", quickstart, "--db", db]);
    assert_eq!(code, 0);
    assert!(out.contains("For_each_order [Foreach] Succeeded"), "{out}");
    assert!(out.contains("[4]"), "iterations are listed: {out}");

    let (code, _, err) = runs_list(&["--status", "Sideways"]);
    assert_eq!(code, 2);
    assert!(err.contains("--status \"Sideways\" is not one of"), "{err}");

    // One run a page: the table says how to get the next, which is empty.
    let (code, out, _) = runs_list(&["--limit", "1"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("older runs: the same command with --before {run_id}")),
        "{out}"
    );
    let (code, out, _) = runs_list(&["--before", &run_id]);
    assert_eq!((code, out.trim()), (0, "no runs"));
    let (code, _, err) = runs_list(&["--before", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("--before \"nope\": no such run"), "{err}");

    let (code, _, err) = cordon(&["runs", "show", "no-such-run", "--project", quickstart, "--db", db]);
    assert_eq!(code, 2);
    assert!(err.contains("no run with id \"no-such-run\""), "{err}");

    let (code, _, err) = cordon(&["run", quickstart, "missing", "--db", db]);
    assert_eq!(code, 2);
    assert!(err.contains("has no workflow \"missing\""), "{err}");

    // Pruning: the run ended just now, so it stays; aged by two days, it goes.
    let prune = |days: &str| cordon(&["runs", "prune", "--older-than-days", days, "--db", db]);
    let (code, out, err) = prune("1");
    assert_eq!(
        (code, out.trim()),
        (0, "deleted 0 finished run(s) that ended more than 1 day(s) ago"),
        "{err}"
    );
    let two_days_ms = 2 * 24 * 60 * 60 * 1000;
    rusqlite::Connection::open(db)
        .and_then(|c| {
            c.execute(
                "UPDATE runs SET started_at = started_at - ?1, ended_at = ended_at - ?1",
                [two_days_ms],
            )
        })
        .expect("age the run");
    let (code, out, err) = prune("1");
    assert_eq!(
        (code, out.trim()),
        (0, "deleted 1 finished run(s) that ended more than 1 day(s) ago"),
        "{err}"
    );
    let (code, out, _) = runs_list(&[]);
    assert_eq!((code, out.trim()), (0, "no runs"));
    let (code, _, err) = cordon(&["runs", "show", &run_id, "--project", quickstart, "--db", db]);
    assert_eq!(code, 2, "{err}");
    let actions_left: i64 = rusqlite::Connection::open(db)
        .and_then(|c| c.query_row("SELECT count(*) FROM actions", [], |row| row.get(0)))
        .expect("count");
    assert_eq!(actions_left, 0, "its actions went with it");
    let (code, _, err) = prune("0");
    assert_eq!(code, 2);
    assert!(err.contains("--older-than-days"), "{err}");
}

#[test]
fn validate_fails_with_located_problems() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("connections.json"), "{}").expect("connections");
    std::fs::create_dir(dir.path().join("w")).expect("dir");
    std::fs::write(
        dir.path().join("w/workflow.json"),
        r#"{"kind": "Stateful", "definition": {"actions": {"A": {"type": "Compose", "inputs": "@add(1)"}}}}"#,
    )
    .expect("workflow");
    let (code, out, _) = cordon(&["validate", dir.path().to_str().expect("utf-8")]);
    assert_eq!(code, 1);
    assert!(
        out.contains("w: action \"A\" at $.definition.actions.A.inputs: "),
        "{out}"
    );
    assert!(out.contains("add takes 2 arguments, got 1"), "{out}");
}

#[test]
fn reading_the_history_of_a_missing_project_or_history_creates_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("typo");
    let missing = missing.to_str().expect("utf-8");
    for args in [
        vec!["runs", "list", "--project", missing],
        vec!["runs", "show", "some-run", "--project", missing],
        vec!["secrets", "list", "--project", missing],
    ] {
        let (code, _, err) = cordon(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("does not exist; pass --project DIR"),
            "{args:?}: {err}"
        );
    }
    assert!(
        !dir.path().join("typo").exists(),
        "a read made the project directory"
    );

    // A project that exists but has never run: nothing to read, and no history file made.
    let project = dir.path().to_str().expect("utf-8");
    let (code, out, _) = cordon(&["runs", "list", "--project", project]);
    assert_eq!(code, 0);
    assert!(out.contains("no runs: there is no run history at"), "{out}");
    let (code, _, err) = cordon(&["runs", "show", "some-run", "--project", project]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no run with id \"some-run\": there is no run history"),
        "{err}"
    );
    let (code, out, _) = cordon(&["secrets", "list", "--project", project, "--json"]);
    assert_eq!((code, out.trim()), (0, "[]"));
    assert!(!dir.path().join(".cordon").exists(), "a read made a history file");
}

#[path = "cli/serve.rs"]
mod serve;

/// Runs `cordon` with `stdin` piped in and extra environment variables.
fn cordon_with(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(args)
        .env_remove("CORDON_MASTER_KEY")
        .env_remove("CORDON_MASTER_KEY_FILE")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run cordon");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn secrets_set_list_rm_never_print_the_value() {
    const VALUE: &str = "canary-secret-value-41f0";
    let project = tempfile::tempdir().expect("tempdir");
    let dir = project.path().to_str().expect("utf-8 path");
    let (code, key, _) = cordon_with(&["secrets", "new-key"], "", &[]);
    assert_eq!(code, 0);
    let key = key.trim().to_owned();
    let with_key = [("CORDON_MASTER_KEY", key.as_str())];

    // Without a key, `set` says how to get one and stores nothing.
    let (code, out, err) = cordon_with(&["secrets", "set", "API_TOKEN", "--project", dir], VALUE, &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("CORDON_MASTER_KEY") && err.contains("cordon secrets new-key"),
        "{err}"
    );

    let (code, out, err) = cordon_with(
        &["secrets", "set", "API_TOKEN", "--project", dir],
        &format!("{VALUE}\n"),
        &with_key,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("stored secret API_TOKEN"), "{out}");
    assert!(err.contains("secret_stored"), "the audit event is shown: {err}");
    let (code, out, _) = cordon_with(
        &["secrets", "set", "API_TOKEN", "--project", dir],
        VALUE,
        &with_key,
    );
    assert_eq!(code, 0);
    assert!(out.contains("replaced secret API_TOKEN"), "{out}");

    // The key may also come from a file.
    let key_file = project.path().join("master.key");
    std::fs::write(&key_file, format!("{key}\n")).expect("write key file");
    let (code, _, err) = cordon_with(
        &[
            "secrets",
            "set",
            "OTHER",
            "--project",
            dir,
            "--master-key-file",
            key_file.to_str().expect("utf-8"),
        ],
        "other-value",
        &[],
    );
    assert_eq!(code, 0, "{err}");

    let (code, out, _) = cordon_with(&["secrets", "list", "--project", dir, "--json"], "", &[]);
    assert_eq!(code, 0);
    let listed: serde_json::Value = serde_json::from_str(&out).expect("json");
    let names: Vec<_> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["API_TOKEN", "OTHER"]);
    let (_, text, _) = cordon_with(&["secrets", "list", "--project", dir], "", &[]);
    assert!(text.contains("API_TOKEN"), "{text}");

    let (code, _, err) = cordon_with(&["secrets", "set", "EMPTY", "--project", dir], "\n", &with_key);
    assert_eq!(code, 2);
    assert!(err.contains("empty"), "{err}");
    let (code, _, err) = cordon_with(
        &["secrets", "set", "../escape", "--project", dir],
        VALUE,
        &with_key,
    );
    assert_eq!(code, 2);
    assert!(err.contains("secret name"), "{err}");

    let (code, out, _) = cordon_with(&["secrets", "rm", "OTHER", "--project", dir], "", &[]);
    assert_eq!(code, 0);
    assert!(out.contains("removed secret OTHER"), "{out}");
    let (code, _, err) = cordon_with(&["secrets", "rm", "OTHER", "--project", dir], "", &[]);
    assert_eq!(code, 2);
    assert!(err.contains("no stored secret OTHER"), "{err}");

    // Nothing printed and nothing on disk holds the value.
    let mut on_disk = Vec::new();
    for entry in std::fs::read_dir(project.path().join(".cordon")).expect("history dir") {
        on_disk.extend(std::fs::read(entry.expect("entry").path()).expect("read"));
    }
    assert!(!on_disk.is_empty());
    assert!(
        !on_disk.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()),
        "the history holds the value"
    );
    assert!(!text.contains(VALUE) && !out.contains(VALUE));
}

#[test]
fn connector_approve_shows_what_an_upgrade_asks_for_and_records_it_only_with_yes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().to_str().expect("utf-8 path");
    std::fs::create_dir_all(dir.path().join("connectors")).expect("connectors dir");
    let install = |name: &str| {
        let builtin = cordon_host::builtin::find(name).expect("built in");
        std::fs::write(dir.path().join("connectors/c.wasm"), builtin.component).expect("install");
    };
    std::fs::write(
        dir.path().join("connections.json"),
        r#"{"serviceProviderConnections": {"transform": {"connector": "connectors/c.wasm", "grant": {"hosts": []}}}}"#,
    )
    .expect("connections.json");

    install("json-transform");
    let (code, out, err) = cordon(&["connector", "status", "--project", project]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("transform (connectors/c.wasm): not yet opened"),
        "{out}"
    );
    let (code, out, err) = cordon(&["connector", "approve", "transform", "--project", project, "--yes"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("asks for nothing beyond the grant") && out.contains("approved transform"),
        "{out}"
    );

    // A different connector file at the same path asks for any host and a secret.
    install("github");
    let (code, out, err) = cordon(&["connector", "status", "--project", project]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("upgrade pending approval"), "{out}");
    assert!(out.contains("asks for: host *://*:*, secret token"), "{out}");
    let (code, out, _) = cordon(&["connector", "approve", "transform", "--project", project]);
    assert_eq!(code, 1, "without --yes nothing is recorded:\n{out}");
    for expected in [
        "approved: json-transform 0.1.0",
        "file:     github 0.1.0",
        "  + host *://*:*",
        "  + secret token",
        "connections.json gives it no value",
        "nothing recorded",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let (_, out, _) = cordon(&["connector", "status", "--project", project, "--json"]);
    let status: serde_json::Value = serde_json::from_str(&out).expect("status --json");
    assert_eq!(
        status["connections"][0]["approved"]["connector"],
        "json-transform"
    );

    let (code, out, err) = cordon(&["connector", "approve", "transform", "--project", project, "--yes"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("approved transform: github 0.1.0"), "{out}");
    let (_, out, _) = cordon(&["connector", "status", "--project", project, "--json"]);
    let status: serde_json::Value = serde_json::from_str(&out).expect("status --json");
    let connection = &status["connections"][0];
    assert_eq!(connection["state"], "approved");
    assert_eq!(
        connection["grantExtension"]["hosts"],
        serde_json::json!(["*://*:*"])
    );
    assert_eq!(connection["grantExtension"]["secrets"][0]["name"], "token");

    let (code, _, err) = cordon(&["connector", "approve", "nope", "--project", project]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no connection \"nope\" (its connections: transform)"),
        "{err}"
    );
}

#[test]
fn a_running_server_takes_up_the_run_of_a_killed_process_on_its_next_sweep() {
    use cordon_host::db::{Db, SqliteDb, Status};
    use std::io::BufRead;

    let (addr, counts) = start_resume_server();
    let dir = tempfile::tempdir().expect("temp dir");
    let project = dir.path();
    std::fs::write(
        project.join("connections.json"),
        serde_json::json!({"http": {"grant": {"hosts": [format!("http://{addr}")]}}}).to_string(),
    )
    .expect("connections.json");
    std::fs::create_dir(project.join("w")).expect("workflow dir");
    let workflow = serde_json::json!({"kind": "Stateful", "definition": {
        "triggers": {"manual": {"type": "Request"}},
        "actions": {"Hang": {"type": "Http", "inputs": {"method": "GET", "uri": format!("http://{addr}/hang")}}}
    }});
    std::fs::write(project.join("w/workflow.json"), workflow.to_string()).expect("workflow.json");
    let db_path = project.join("history.db");
    let cache = std::env::temp_dir().join("cordon-cli-test-cache");
    let cordon = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cordon"));
        c.args(args)
            .args([
                project.to_str().expect("utf-8"),
                "--db",
                db_path.to_str().expect("utf-8"),
            ])
            .env("CORDON_CACHE_DIR", &cache)
            .stdout(std::process::Stdio::null());
        c
    };
    /// Kills a child when dropped, so a failed assertion leaves no server behind.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    // A server on the history; wait (bounded) until it serves, so its start-up sweep is past.
    let mut server = Killed(
        cordon(&["serve", "--listen", "127.0.0.1:0"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start cordon serve"),
    );
    let log = std::io::BufReader::new(server.0.stderr.take().expect("stderr"));
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in log.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let serving = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let line = seen
            .recv_timeout(std::time::Duration::from_secs(1))
            .unwrap_or_default();
        if line.contains("serving") {
            break;
        }
        assert!(std::time::Instant::now() < serving, "cordon serve never served");
    }

    // A `cordon run` of the same project dies inside its request.
    let mut run = Killed(
        cordon(&["run"])
            .arg("w")
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start cordon run"),
    );
    let mut waited = 0;
    while counts.lock().expect("lock").1 == 0 {
        assert!(waited < 1200, "cordon run never reached its request");
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    }
    run.0.kill().expect("SIGKILL");
    run.0.wait().expect("reap");

    // The server's next sweep (every 30 s) finds the dead owner and finishes the run.
    let db = SqliteDb::open(&db_path).expect("history");
    let run_id = db.list_runs(&Default::default()).expect("runs")[0].id.clone();
    let mut status = Status::Running;
    for _ in 0..900 {
        status = db.run(&run_id).expect("run").status;
        if status != Status::Running {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(status, Status::Succeeded, "the server never took the run up");
    assert_eq!(
        counts.lock().expect("lock").1,
        2,
        "the request was made again, once"
    );
    let mut resumed = false;
    while let Ok(line) = seen.recv_timeout(std::time::Duration::from_millis(200)) {
        resumed |= line.contains("resuming unfinished runs");
    }
    assert!(resumed, "the server logged the sweep that took the run");
}

#[test]
fn run_takes_a_trigger_body_of_another_type_as_the_server_would() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("connections.json"), "{}").expect("connections");
    std::fs::create_dir(dir.path().join("total")).expect("workflow dir");
    let workflow = serde_json::json!({"kind": "Stateful", "definition": {
        "triggers": {"manual": {"type": "Request", "kind": "Http"}},
        "actions": {"Total": {"type": "Compose",
            "inputs": "@{xpath(xml(triggerBody()), 'sum(//line/@price)')} for @{triggerFormDataValue('x')}"}}
    }});
    std::fs::write(dir.path().join("total/workflow.json"), workflow.to_string()).expect("workflow");
    let order = dir.path().join("order.xml");
    std::fs::write(&order, r#"<order><line price="2.5"/><line price="4"/></order>"#).expect("order");
    let project = dir.path().to_str().expect("utf-8");
    let body = format!("@{}", order.display());

    let (code, out, err) = cordon(&[
        "run",
        project,
        "total",
        "--trigger-body",
        &body,
        "--content-type",
        "application/xml",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let run_id = started_run_id(&out);
    let (code, out, err) = cordon(&["runs", "show", run_id, "--project", project, "--verbose"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("6.5 for"), "{out}");

    // Without the type the file is read as JSON, and the error says so.
    let (code, _, err) = cordon(&["run", project, "total", "--trigger-body", &body]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not valid JSON"), "{err}");
    // A type whose shape the bytes do not have is refused before any run starts.
    let (code, _, err) = cordon(&[
        "run",
        project,
        "total",
        "--trigger-body",
        "{oops",
        "--content-type",
        "application/json",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not what --content-type \"application/json\" says"),
        "{err}"
    );
}

/// A service on loopback that takes an HttpWebhook subscription and, once it has answered,
/// calls the callback URL it was given. Gives its address and the callbacks' answers.
fn start_approval_service() -> (std::net::SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<u16>>>) {
    use std::sync::{Arc, Mutex};
    let answers = Arc::new(Mutex::new(Vec::new()));
    let seen = answers.clone();
    let app = axum::Router::new().route(
        "/subscribe",
        axum::routing::post(move |body: String| {
            let seen = seen.clone();
            async move {
                let body: serde_json::Value = serde_json::from_str(&body).expect("JSON subscription");
                let url = body["callbackUrl"].as_str().expect("callbackUrl").to_owned();
                tokio::spawn(async move {
                    let _ = rustls::crypto::ring::default_provider().install_default();
                    let client = reqwest::Client::builder().no_proxy().build().expect("client");
                    let answer = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(r#"{"decision": "approved"}"#)
                        .send()
                        .await;
                    let status = answer.map(|a| a.status().as_u16()).unwrap_or(0);
                    seen.lock().expect("lock").push(status);
                });
                (axum::http::StatusCode::CREATED, "subscribed")
            }
        }),
    );
    (serve_on_a_thread(app), answers)
}

#[test]
fn run_receives_the_callback_of_an_http_webhook_action() {
    let (service, answers) = start_approval_service();
    let dir = tempfile::tempdir().expect("temp dir");
    let connections = serde_json::json!({"http": {"grant": {"hosts": [format!("http://{service}")]}}});
    std::fs::write(dir.path().join("connections.json"), connections.to_string()).expect("connections");
    std::fs::create_dir(dir.path().join("approve")).expect("workflow dir");
    let workflow = serde_json::json!({"kind": "Stateful", "definition": {
        "triggers": {"manual": {"type": "Request", "kind": "Http"}},
        "actions": {
            "Ask": {"type": "HttpWebhook", "inputs": {"subscribe": {
                "method": "POST", "uri": format!("http://{service}/subscribe"),
                "body": {"callbackUrl": "@{listCallbackUrl()}"}}},
                "limit": {"timeout": "PT1M"}},
            "Decision": {"type": "Compose", "inputs": "decision: @{body('Ask')['decision']}",
                         "runAfter": {"Ask": ["Succeeded"]}}
        }
    }});
    std::fs::write(dir.path().join("approve/workflow.json"), workflow.to_string()).expect("workflow");
    let project = dir.path().to_str().expect("utf-8");

    let (code, out, err) = cordon(&["run", project, "approve"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("HttpWebhook callbacks: http://127.0.0.1:"), "{out}");
    // The live view shows the URL the action waits on (with its signature), so a user trying
    // a webhook by hand can be the service.
    assert!(
        out.contains("waiting  Ask for a call of http://127.0.0.1:"),
        "{out}"
    );
    assert!(out.contains("/api/callbacks/") && out.contains("?sig="), "{out}");
    // The service records the answer once it has read it, which may be just after the run.
    for _ in 0..250 {
        if !answers.lock().expect("lock").is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        *answers.lock().expect("lock"),
        vec![200],
        "the callback was taken"
    );
    let run_id = started_run_id(&out);
    let (code, out, err) = cordon(&["runs", "show", run_id, "--project", project, "--verbose"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("decision: approved"), "{out}");
}
