//! `cordon serve` as a process: killed with SIGKILL in the middle of a burst of webhook
//! requests, then started again.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cordon_host::db::{Db, SqliteDb, Status};

/// How many requests the burst sends, and over how many connections at once.
const BURST: usize = 400;
const CLIENTS: usize = 16;
/// The server is killed once this many requests have been acknowledged.
const KILL_AFTER: usize = 60;

/// A project with one request-triggered workflow: three built-in actions, one of them a short
/// wait so that some runs are always in flight when the server dies. No Response action, so the
/// server answers 202 as soon as the run is recorded.
fn write_project(project: &Path) {
    std::fs::write(project.join("connections.json"), "{}").expect("connections.json");
    std::fs::create_dir(project.join("hook")).expect("workflow dir");
    let workflow = serde_json::json!({"kind": "Stateful", "definition": {
    "triggers": {"manual": {"type": "Request", "kind": "Http"}},
    "actions": {
        "Read": {"type": "Compose", "inputs": "@triggerBody()?['n']"},
        "Pause": {"type": "Wait", "inputs": {"interval": {"count": 0.3, "unit": "Second"}},
                  "runAfter": {"Read": ["Succeeded"]}},
        "Done": {"type": "Compose", "inputs": "@mul(outputs('Read'), 2)",
                 "runAfter": {"Pause": ["Succeeded"]}}
    }}});
    std::fs::write(project.join("hook/workflow.json"), workflow.to_string()).expect("workflow.json");
}

/// Starts `cordon serve` on a free loopback port and returns it with the callback URL it prints.
fn serve(project: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args([
            "serve",
            project.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
        ])
        .env(
            "CORDON_CACHE_DIR",
            std::env::temp_dir().join("cordon-cli-test-cache"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cordon serve");
    let stdout = child.stdout.take().expect("stdout");
    // serve prints one `WORKFLOW TRIGGER: URL` line per request trigger before it listens; the
    // read ends at EOF if the process dies first.
    let mut lines = std::io::BufReader::new(stdout).lines();
    let line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("hook manual: "))
        .expect("cordon serve printed the callback URL");
    // Keep the pipe open (and drained) for as long as the server lives.
    std::thread::spawn(move || lines.for_each(drop));
    let url = line.trim_start_matches("hook manual: ").to_owned();
    (child, url)
}

/// Waits (bounded) until no run is left unfinished, and returns every run.
fn wait_until_all_finished(db_path: &Path) -> Vec<cordon_host::db::RunRecord> {
    for _ in 0..600 {
        let db = SqliteDb::open(db_path).expect("history");
        let runs = db.list_runs(&Default::default()).expect("runs");
        if runs.iter().all(|r| r.ended_at.is_some()) {
            return runs;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("runs were still unfinished 60 s after the restart");
}

#[test]
fn sigkill_during_a_webhook_burst_loses_no_acknowledged_run_and_starts_none_twice() {
    let dir = tempfile::tempdir().expect("temp dir");
    let project = dir.path();
    write_project(project);
    let db_path = project.join(".cordon/history.db");

    let (mut server, url) = serve(project);
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    // request number -> run id, for every request that got a 2xx.
    let acknowledged: HashMap<u64, String> = runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, String)>();
        let senders: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (client, url, tx) = (client.clone(), url.clone(), tx.clone());
                tokio::spawn(async move {
                    for n in (c..BURST).step_by(CLIENTS) {
                        let sent = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(format!(r#"{{"n": {n}}}"#))
                            .timeout(Duration::from_secs(10))
                            .send()
                            .await;
                        // Once the server is gone every further request fails; stop.
                        let Ok(response) = sent else { return };
                        if !response.status().is_success() {
                            return;
                        }
                        let id = response
                            .headers()
                            .get("x-cordon-run-id")
                            .and_then(|v| v.to_str().ok())
                            .expect("a 2xx names its run")
                            .to_owned();
                        let _ = tx.send((n as u64, id));
                    }
                })
            })
            .collect();
        drop(tx);
        let mut acknowledged = HashMap::new();
        while let Some((n, id)) = rx.recv().await {
            acknowledged.insert(n, id);
            if acknowledged.len() == KILL_AFTER {
                server.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
            }
        }
        for sender in senders {
            sender.await.expect("client task");
        }
        acknowledged
    });
    // Reap it, so that its pid is gone and the restart sees its leases as orphaned.
    server.kill().ok();
    server.wait().expect("reap the killed server");
    assert!(
        acknowledged.len() >= KILL_AFTER && acknowledged.len() < BURST,
        "the kill landed in the middle of the burst ({} of {BURST} acknowledged)",
        acknowledged.len()
    );
    let unfinished_at_kill = {
        let db = SqliteDb::open(&db_path).expect("history survives the kill");
        let runs = db.list_runs(&Default::default()).expect("runs");
        runs.iter().filter(|r| r.ended_at.is_none()).count()
    };
    assert!(
        unfinished_at_kill > 0,
        "some runs were in flight when the server died"
    );

    let (mut restarted, _) = serve(project);
    let runs = wait_until_all_finished(&db_path);
    // A graceful stop this time: SIGTERM, and the server exits by itself.
    let terminated = Command::new("kill")
        .args(["-TERM", &restarted.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(terminated.success());
    let mut exited = None;
    for _ in 0..300 {
        exited = restarted.try_wait().expect("poll server");
        if exited.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let exited = exited.unwrap_or_else(|| {
        restarted.kill().ok();
        panic!("cordon serve did not exit within 30 s of SIGTERM")
    });
    assert!(exited.success(), "serve exited with {exited}");

    // Every run, acknowledged or not (a request can be recorded and lose its answer to the
    // kill), has exactly one record per request number and completed.
    let mut by_number: HashMap<u64, Vec<&cordon_host::db::RunRecord>> = HashMap::new();
    for run in &runs {
        let n = run.trigger["outputs"]["body"]["n"]
            .as_u64()
            .expect("the trigger body is recorded");
        by_number.entry(n).or_default().push(run);
    }
    for (n, id) in &acknowledged {
        let runs = by_number.get(n).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(runs.len(), 1, "request {n} got a 2xx and has {} runs", runs.len());
        assert_eq!(&runs[0].id, id, "request {n}'s run is the one its 2xx named");
    }
    for (n, runs) in &by_number {
        assert_eq!(runs.len(), 1, "request {n} has {} runs", runs.len());
        assert_eq!(
            runs[0].status,
            Status::Succeeded,
            "request {n}: {:?}",
            runs[0].error
        );
        let db = SqliteDb::open(&db_path).expect("history");
        let done = db
            .actions(&runs[0].id, false)
            .expect("actions")
            .into_iter()
            .find(|a| a.name == "Done")
            .expect("Done ran");
        assert_eq!(done.outputs, Some(serde_json::json!(n * 2)));
    }
}

#[test]
fn serve_with_tenants_runs_each_tenant_in_its_own_history() {
    let dir = tempfile::tempdir().expect("temp dir");
    for tenant in ["acme", "globex"] {
        std::fs::create_dir(dir.path().join(tenant)).expect("tenant dir");
        write_project(&dir.path().join(tenant));
    }
    // A third tenant whose quota file is wrong: the other two are served all the same.
    std::fs::create_dir(dir.path().join("initech")).expect("tenant dir");
    write_project(&dir.path().join("initech"));
    std::fs::write(
        dir.path().join("initech/tenant.json"),
        r#"{"quotas": {"runsPerMinute": 0}}"#,
    )
    .expect("tenant.json");
    // Each tenant has a run from two days ago; acme keeps finished runs one day, globex the
    // server's default (90).
    std::fs::write(dir.path().join("acme/tenant.json"), r#"{"retentionDays": 1}"#).expect("tenant.json");
    let mut aged = Vec::new();
    for tenant in ["acme", "globex"] {
        let project = dir.path().join(tenant);
        let ran = Command::new(env!("CARGO_BIN_EXE_cordon"))
            .args([
                "run",
                project.to_str().expect("utf-8"),
                "hook",
                "--trigger-body",
                r#"{"n": 1}"#,
            ])
            .output()
            .expect("cordon run");
        assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
        let history = project.join(".cordon/history.db");
        let two_days_ms = 2 * 24 * 60 * 60 * 1000_i64;
        rusqlite::Connection::open(&history)
            .and_then(|c| {
                c.execute(
                    "UPDATE runs SET started_at = started_at - ?1, ended_at = ended_at - ?1",
                    [two_days_ms],
                )
            })
            .expect("age the run");
        let runs = SqliteDb::open(&history)
            .expect("history")
            .list_runs(&Default::default())
            .expect("runs");
        aged.push(runs[0].id.clone());
    }
    // `validate --tenants` finds it before the server starts.
    let validated = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["validate", dir.path().to_str().expect("utf-8"), "--tenants"])
        .output()
        .expect("cordon validate --tenants");
    let out = String::from_utf8_lossy(&validated.stdout);
    assert_eq!(validated.status.code(), Some(1), "{out}");
    assert!(
        out.contains("acme: ok: 1 workflow") && out.contains("globex: ok: 1 workflow"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("initech: tenant.json") && l.contains("runsPerMinute is 0")),
        "{out}"
    );
    let mut server = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args([
            "serve",
            dir.path().to_str().expect("utf-8"),
            "--tenants",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cordon serve --tenants");
    let stderr = server.stderr.take().expect("stderr");
    let log = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let stdout = server.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let urls: Vec<String> = lines
        .by_ref()
        .map_while(Result::ok)
        .filter_map(|l| l.strip_prefix("hook manual: ").map(str::to_owned))
        .take(2)
        .collect();
    std::thread::spawn(move || lines.for_each(drop));
    assert_eq!(urls.len(), 2, "one callback URL per tenant");
    assert!(
        urls[0].contains("/tenants/acme/") && urls[1].contains("/tenants/globex/"),
        "{urls:?}"
    );

    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    let run_ids: Vec<String> = runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        let mut ids = Vec::new();
        for url in &urls {
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .body(r#"{"n": 21}"#)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .expect("trigger");
            assert_eq!(response.status(), 202);
            ids.push(
                response.headers()["x-cordon-run-id"]
                    .to_str()
                    .expect("id")
                    .to_owned(),
            );
        }
        let root = urls[0].split("/tenants/").next().expect("root");
        let response = client
            .post(format!("{root}/tenants/initech/api/hook/triggers/manual/invoke"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("initech");
        assert_eq!(response.status(), 503);
        ids
    });
    for (tenant, run_id) in ["acme", "globex"].iter().zip(&run_ids) {
        let runs = wait_until_all_finished(&dir.path().join(tenant).join(".cordon/history.db"));
        let new: Vec<_> = runs.iter().filter(|r| !aged.contains(&r.id)).collect();
        assert_eq!(new.len(), 1, "{tenant} has its own run only");
        assert_eq!(&new[0].id, run_id);
        assert_eq!(new[0].status, Status::Succeeded);
    }
    // The retention sweep at start: acme's aged run went, globex's stays.
    let aged_left = |tenant: &str| {
        let db = SqliteDb::open(&dir.path().join(tenant).join(".cordon/history.db")).expect("history");
        aged.iter().filter(|id| db.run(id).is_ok()).count()
    };
    for _ in 0..100 {
        if aged_left("acme") == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(aged_left("acme"), 0, "acme keeps finished runs one day");
    assert_eq!(aged_left("globex"), 1, "globex keeps them the default 90 days");
    assert!(dir.path().join(".cordon/operator-key").exists());
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let status = server.wait().expect("wait");
    assert!(status.success(), "SIGTERM stops it cleanly: {status}");
    let log = log.join().expect("stderr");
    assert!(
        log.lines()
            .any(|l| l.contains("initech") && l.contains("runsPerMinute is 0") && l.contains("503")),
        "the log names the tenant that did not open and why:\n{log}"
    );
}
