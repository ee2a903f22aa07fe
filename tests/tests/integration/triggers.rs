//! Recurrence and polling triggers, stepped by the tests at chosen instants
//! (`Scheduler::tick`), against real connectors and a fake GitHub on loopback.

use std::net::SocketAddr;

use cordon_host::db::{Db, RunFilter, RunRecord, Status};
use cordon_host::workflow::Engine;
use cordon_host::workflow::scheduler::Scheduler;
use cordon_tests::{FAKE_GITHUB_TOKEN, FakeGithub, serve, workflow_engine};
use serde_json::{Value, json};

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;

fn write_project(dir: &std::path::Path, github: Option<SocketAddr>, workflows: &[(&str, Value)]) {
    let connections = match github {
        Some(addr) => json!({"serviceProviderConnections": {"github": {
            "connector": "github",
            "parameterValues": {"base_url": format!("http://{addr}"), "token": "@appsetting('GITHUB_TOKEN')"},
            "grant": {"hosts": [format!("http://{addr}")], "secrets": [{"name": "token"}]}
        }}}),
        None => json!({"serviceProviderConnections": {}}),
    };
    std::fs::write(dir.join("connections.json"), connections.to_string()).expect("write connections.json");
    std::fs::write(
        dir.join("local.settings.json"),
        json!({"Values": {"GITHUB_TOKEN": FAKE_GITHUB_TOKEN}}).to_string(),
    )
    .expect("write local.settings.json");
    for (name, definition) in workflows {
        std::fs::create_dir_all(dir.join(name)).expect("workflow dir");
        let workflow = json!({"definition": definition, "kind": "Stateful"});
        std::fs::write(dir.join(name).join("workflow.json"), workflow.to_string())
            .expect("write workflow.json");
    }
}

fn recurrence_workflow(recurrence: Value) -> Value {
    json!({
        "triggers": {"Every": {"type": "Recurrence", "recurrence": recurrence}},
        "actions": {"Scheduled": {"type": "Compose", "inputs": "@triggerBody()?['scheduledTime']"}}
    })
}

fn polling_workflow(recurrence: Value) -> Value {
    json!({
        "triggers": {"When_an_issue_is_opened": {
            "type": "ServiceProvider",
            "inputs": {
                "parameters": {"owner": "acme", "repo": "widgets"},
                "serviceProviderConfiguration": {"connectionName": "github", "operationId": "new_issue"}
            },
            "recurrence": recurrence,
            "splitOn": "@triggerBody()",
            "conditions": [{"expression": "@not(startsWith(triggerBody()?['title'], 'skip'))"}]
        }},
        "actions": {"Title": {"type": "Compose", "inputs": "@triggerBody()?['title']"}}
    })
}

async fn tick(scheduler: &Scheduler, at: i64) -> Vec<RunRecord> {
    scheduler.tick(at).await.expect("tick")
}

async fn output_of(engine: &Engine, run: RunRecord, action: &str) -> Value {
    let run_id = run.id.clone();
    let finished = engine.execute(run).await.expect("run executes");
    assert_eq!(
        finished.status,
        Status::Succeeded,
        "run {run_id}: {:?}",
        finished.error
    );
    let actions = engine.db().actions(&run_id, false).expect("actions");
    actions
        .iter()
        .find(|a| a.name == action)
        .and_then(|a| a.outputs.clone())
        .expect("action has outputs")
}

#[tokio::test]
async fn a_recurrence_fires_once_per_occurrence_and_folds_missed_ones_into_one_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let every_minute = json!({"frequency": "Minute", "interval": 1, "startTime": "2026-01-01T00:00:00Z"});
    write_project(dir.path(), None, &[("tick", recurrence_workflow(every_minute))]);
    let (engine, db, _clock) = workflow_engine(dir.path()).await;
    let scheduler = Scheduler::new(engine.clone());

    assert!(tick(&scheduler, T0 - SECOND).await.is_empty(), "before startTime");
    assert_eq!(tick(&scheduler, T0).await.len(), 1, "the first occurrence");
    assert!(
        tick(&scheduler, T0).await.is_empty(),
        "an occurrence never fires twice"
    );
    assert!(tick(&scheduler, T0 + 30 * SECOND).await.is_empty());
    assert_eq!(tick(&scheduler, T0 + MINUTE).await.len(), 1);

    // Two steps racing for one occurrence: the version check lets one through.
    let (a, b) = tokio::join!(scheduler.tick(T0 + 2 * MINUTE), scheduler.tick(T0 + 2 * MINUTE));
    assert_eq!(a.expect("tick").len() + b.expect("tick").len(), 1);

    // Down from 00:02 to 00:10:05: the eight occurrences 00:03..00:10 fold into one run.
    let folded = tick(&scheduler, T0 + 10 * MINUTE + 5 * SECOND).await;
    assert_eq!(folded.len(), 1);
    assert_eq!(
        folded[0].trigger["outputs"]["body"],
        json!({"scheduledTime": "2026-01-01T00:10:00.000Z", "missedOccurrences": 7})
    );
    assert_eq!(folded[0].trigger["name"], "Every");
    let scheduled = output_of(&engine, folded[0].clone(), "Scheduled").await;
    assert_eq!(scheduled, json!("2026-01-01T00:10:00.000Z"));
    assert!(tick(&scheduler, T0 + 10 * MINUTE + 30 * SECOND).await.is_empty());
    assert_eq!(tick(&scheduler, T0 + 11 * MINUTE).await.len(), 1);

    // Disabled: nothing fires, and what fell due meanwhile is skipped, not caught up.
    engine.set_enabled("tick", false).expect("disable");
    assert!(tick(&scheduler, T0 + 12 * MINUTE).await.is_empty());
    assert!(tick(&scheduler, T0 + 15 * MINUTE).await.is_empty());
    engine.set_enabled("tick", true).expect("enable");
    assert!(tick(&scheduler, T0 + 15 * MINUTE + SECOND).await.is_empty());
    assert_eq!(tick(&scheduler, T0 + 16 * MINUTE).await.len(), 1);

    let recorded = db
        .list_runs(&RunFilter {
            workflow: Some("tick".into()),
            ..RunFilter::default()
        })
        .expect("runs");
    assert_eq!(
        recorded.len(),
        6,
        "00:00, 00:01, 00:02, 00:10 (folded), 00:11, 00:16"
    );
}

#[tokio::test]
async fn a_recurrence_without_start_time_fires_at_first_sight_and_an_edit_reschedules_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(
        dir.path(),
        None,
        &[(
            "hourly",
            recurrence_workflow(json!({"frequency": "Hour", "interval": 1})),
        )],
    );
    let (engine, _db, _clock) = workflow_engine(dir.path()).await;
    let scheduler = Scheduler::new(engine);
    assert_eq!(
        tick(&scheduler, T0 + 17 * SECOND).await.len(),
        1,
        "fires when first seen"
    );
    assert!(tick(&scheduler, T0 + 59 * MINUTE).await.is_empty());

    // The schedule is edited to daily at 06:00 and the server restarted at 00:30: no catch-up,
    // and the old hourly occurrence at 01:00:17 no longer fires.
    write_project(
        dir.path(),
        None,
        &[(
            "hourly",
            recurrence_workflow(json!({"frequency": "Day", "schedule": {"hours": [6], "minutes": [0]}})),
        )],
    );
    let (engine, _db, _clock) = workflow_engine(dir.path()).await;
    let scheduler = Scheduler::new(engine);
    assert!(tick(&scheduler, T0 + 61 * MINUTE).await.is_empty());
    let runs = tick(&scheduler, T0 + 6 * 60 * MINUTE).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].trigger["outputs"]["body"]["scheduledTime"],
        "2026-01-01T06:00:00.000Z"
    );
}

fn sliding_window_workflow(interval_minutes: u32) -> Value {
    json!({
        "triggers": {"Every_window": {
            "type": "SlidingWindow",
            "recurrence": {"frequency": "Minute", "interval": interval_minutes, "startTime": "2026-01-01T00:00:00Z"},
            "inputs": {"delay": "PT1M"}
        }},
        "actions": {"Window": {"type": "Compose",
            "inputs": "@{triggerOutputs()?['windowStartTime']}/@{triggerBody()?['windowEndTime']}"}}
    })
}

/// The windows (start/end, as the run's action saw them) of the runs a tick recorded.
async fn windows(engine: &Engine, runs: Vec<RunRecord>) -> Vec<String> {
    let mut windows = Vec::new();
    for run in runs {
        let window = output_of(engine, run, "Window").await;
        windows.push(
            window
                .as_str()
                .expect("text")
                .replace("2026-01-01T", "")
                .replace(":00.000Z", ""),
        );
    }
    windows
}

#[tokio::test]
async fn a_sliding_window_runs_every_window_once_missed_ones_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(dir.path(), None, &[("windows", sliding_window_workflow(10))]);
    let (engine, db, _clock) = workflow_engine(dir.path()).await;
    let scheduler = Scheduler::new(engine.clone());

    // The first window [00:00, 00:10) runs once it has ended and the delay has passed.
    assert!(tick(&scheduler, T0 + 5 * MINUTE).await.is_empty());
    assert!(
        tick(&scheduler, T0 + 10 * MINUTE + 59 * SECOND).await.is_empty(),
        "delay"
    );
    let first = tick(&scheduler, T0 + 11 * MINUTE).await;
    assert_eq!(windows(&engine, first).await, ["00:00/00:10"]);
    assert!(tick(&scheduler, T0 + 11 * MINUTE).await.is_empty(), "once");

    // Down until 00:45: the three windows it missed run one by one, oldest first.
    let mut caught_up = Vec::new();
    for _ in 0..5 {
        caught_up.extend(windows(&engine, tick(&scheduler, T0 + 45 * MINUTE).await).await);
    }
    assert_eq!(caught_up, ["00:10/00:20", "00:20/00:30", "00:30/00:40"]);
    let state = db
        .trigger_state("windows", "Every_window")
        .expect("state")
        .expect("stored");
    assert_eq!(state.next_at, Some(T0 + 51 * MINUTE));

    // Disabled past a window's end: the window waits and runs on enabling.
    engine.set_enabled("windows", false).expect("disable");
    assert!(tick(&scheduler, T0 + 55 * MINUTE).await.is_empty());
    engine.set_enabled("windows", true).expect("enable");
    let after_enabling = tick(&scheduler, T0 + 55 * MINUTE).await;
    assert_eq!(windows(&engine, after_enabling).await, ["00:40/00:50"]);

    // The interval edited to 5 minutes (a restart): the windows go on from 00:50, no gap.
    write_project(dir.path(), None, &[("windows", sliding_window_workflow(5))]);
    let (engine, _db, _clock) = workflow_engine(dir.path()).await;
    let scheduler = Scheduler::new(engine.clone());
    assert!(tick(&scheduler, T0 + 55 * MINUTE + 30 * SECOND).await.is_empty());
    let edited = tick(&scheduler, T0 + 56 * MINUTE).await;
    assert_eq!(windows(&engine, edited).await, ["00:50/00:55"]);
    let runs = engine.db().list_runs(&RunFilter::default()).expect("runs");
    assert_eq!(runs.len(), 6, "one run per window, none twice");
}

#[tokio::test]
async fn a_recurrence_turned_sliding_window_starts_its_windows_when_it_is_first_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    let every_ten_minutes = json!({"frequency": "Minute", "interval": 10});
    let recurrence = json!({
        "triggers": {"Every_window": {"type": "Recurrence", "recurrence": every_ten_minutes}},
        "actions": {"Window": {"type": "Compose", "inputs": "@triggerBody()"}}
    });
    write_project(dir.path(), None, &[("windows", recurrence)]);
    let (engine, _db, _clock) = workflow_engine(dir.path()).await;
    assert_eq!(tick(&Scheduler::new(engine), T0).await.len(), 1);

    // Three days later the same trigger is a sliding window without a startTime: its windows
    // start now, not at the Recurrence's first sight (which would be 432 windows behind).
    let mut sliding = sliding_window_workflow(10);
    sliding["triggers"]["Every_window"]["recurrence"] = every_ten_minutes;
    write_project(dir.path(), None, &[("windows", sliding)]);
    let (engine, _db, _clock) = workflow_engine(dir.path()).await;
    let scheduler = Scheduler::new(engine.clone());
    let three_days = 3 * 24 * 60 * MINUTE;
    assert!(tick(&scheduler, T0 + three_days).await.is_empty());
    let first = tick(&scheduler, T0 + three_days + 11 * MINUTE).await;
    assert_eq!(
        windows(&engine, first).await,
        ["2026-01-04T00:00/2026-01-04T00:10"]
    );
    assert!(tick(&scheduler, T0 + three_days + 11 * MINUTE).await.is_empty());
}

#[tokio::test]
async fn a_polling_trigger_starts_one_run_per_new_item_exactly_once() {
    let fake = FakeGithub::default();
    fake.add("opened before the trigger existed");
    let addr = serve(fake.router()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let every_minute = json!({"frequency": "Minute", "interval": 1, "startTime": "2026-01-01T00:00:00Z"});
    write_project(
        dir.path(),
        Some(addr),
        &[("issues", polling_workflow(every_minute))],
    );
    let (engine, db, _clock) = workflow_engine(dir.path()).await;
    let scheduler = Scheduler::new(engine.clone());

    assert!(
        tick(&scheduler, T0).await.is_empty(),
        "the first poll only records the cursor"
    );
    assert_eq!(fake.list_count(), 1);
    fake.add("a");
    fake.add("skip: filtered by the trigger's condition");
    fake.add("c");
    assert!(tick(&scheduler, T0 + 30 * SECOND).await.is_empty(), "not due");
    assert_eq!(fake.list_count(), 1, "nothing polls before the occurrence");

    let runs = tick(&scheduler, T0 + MINUTE).await;
    assert_eq!(
        runs.len(),
        2,
        "splitOn: one run per item the condition lets through"
    );
    let mut titles = Vec::new();
    for run in runs {
        titles.push(output_of(&engine, run, "Title").await);
    }
    titles.sort_by_key(|t| t.to_string());
    assert_eq!(titles, vec![json!("a"), json!("c")]);
    let state = db
        .trigger_state("issues", "When_an_issue_is_opened")
        .expect("state")
        .expect("stored");
    assert_eq!(state.cursor, Some(json!({"last_number": 4})));

    assert!(
        tick(&scheduler, T0 + 2 * MINUTE).await.is_empty(),
        "no item twice"
    );

    // A second server on the same history polls the same new item at the same time: the
    // cursor and the runs are written together under a version check, so one run results.
    fake.add("d");
    let (second, _, _) = workflow_engine(dir.path()).await;
    let other = Scheduler::new(second);
    let (a, b) = tokio::join!(scheduler.tick(T0 + 3 * MINUTE), other.tick(T0 + 3 * MINUTE));
    let started: Vec<RunRecord> = a.expect("tick").into_iter().chain(b.expect("tick")).collect();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].trigger["outputs"]["body"]["title"], "d");
    let recorded = db
        .list_runs(&RunFilter {
            workflow: Some("issues".into()),
            ..RunFilter::default()
        })
        .expect("runs");
    assert_eq!(recorded.len(), 3);
}

#[tokio::test]
async fn a_failing_poll_backs_off_and_honours_retry_after_without_holding_up_others() {
    let fake = FakeGithub::default();
    let addr = serve(fake.router()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let every_second = json!({"frequency": "Second", "interval": 1, "startTime": "2026-01-01T00:00:00Z"});
    write_project(
        dir.path(),
        Some(addr),
        &[
            ("issues", polling_workflow(every_second.clone())),
            ("steady", recurrence_workflow(every_second)),
        ],
    );
    let (engine, db, _clock) = workflow_engine(dir.path()).await;
    let scheduler = Scheduler::new(engine);
    let state = || {
        db.trigger_state("issues", "When_an_issue_is_opened")
            .expect("state")
            .expect("stored")
    };

    assert_eq!(
        tick(&scheduler, T0).await.len(),
        1,
        "steady fires; issues records its cursor"
    );
    assert_eq!(fake.list_count(), 1);

    fake.fail_next(429, Some(120));
    assert_eq!(
        tick(&scheduler, T0 + SECOND).await.len(),
        1,
        "steady is not held up"
    );
    assert_eq!(fake.list_count(), 2);
    let throttled = state();
    assert_eq!(throttled.failures, 1);
    assert_eq!(
        throttled.next_at,
        Some(T0 + SECOND + 120 * SECOND),
        "Retry-After: 120"
    );
    assert!(
        throttled
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("rate limited")),
        "{:?}",
        throttled.last_error
    );
    assert_eq!(tick(&scheduler, T0 + 60 * SECOND).await.len(), 1);
    assert_eq!(fake.list_count(), 2, "no poll inside Retry-After");
    tick(&scheduler, T0 + 121 * SECOND).await;
    assert_eq!(fake.list_count(), 3);
    assert_eq!(state().failures, 0, "a good poll clears the failures");

    // Server errors back off 5 s, then 10 s.
    fake.fail_next(500, None);
    fake.fail_next(500, None);
    tick(&scheduler, T0 + 122 * SECOND).await;
    assert_eq!(state().next_at, Some(T0 + 127 * SECOND));
    tick(&scheduler, T0 + 126 * SECOND).await;
    assert_eq!(fake.list_count(), 4, "backing off");
    tick(&scheduler, T0 + 127 * SECOND).await;
    assert_eq!((fake.list_count(), state().failures), (5, 2));
    assert_eq!(state().next_at, Some(T0 + 137 * SECOND));
    tick(&scheduler, T0 + 137 * SECOND).await;
    assert_eq!((fake.list_count(), state().failures), (6, 0));
}

#[tokio::test]
async fn a_tenant_past_its_run_quota_defers_a_recurrence_without_losing_it() {
    use cordon_host::workflow::project::Project;
    use cordon_host::workflow::{EngineOptions, clock::FakeClock};
    let dir = tempfile::tempdir().expect("temp dir");
    let every_second = json!({"frequency": "Second", "interval": 1, "startTime": "2026-01-01T00:00:00Z"});
    write_project(dir.path(), None, &[("tick", recurrence_workflow(every_second))]);
    let db = std::sync::Arc::new(
        cordon_host::db::SqliteDb::open(&dir.path().join(".cordon/history.db")).expect("history"),
    );
    let mut options = EngineOptions::new(db.clone());
    options.clock = std::sync::Arc::new(FakeClock::starting_at(T0));
    // One run a minute (in real time): the first occurrence fires, the next ones wait.
    options.runs_per_minute = Some(1);
    let project = Project::open(dir.path()).expect("project");
    let engine = Engine::open(&project, &cordon_tests::runtime(), options)
        .await
        .expect("engine");
    let scheduler = Scheduler::new(engine.clone());

    assert_eq!(tick(&scheduler, T0).await.len(), 1);
    for at in 1..=5 {
        assert!(
            tick(&scheduler, T0 + at * SECOND).await.is_empty(),
            "fired past the quota at +{at} s"
        );
    }
    // Nothing was skipped for good: the trigger is still due at its first deferred
    // occurrence, so when the quota has room the occurrences fold into one run (as after
    // an outage) instead of being lost.
    let state = db.trigger_state("tick", "Every").expect("state").expect("kept");
    assert_eq!(state.next_at, Some(T0 + SECOND));
    let runs = db.list_runs(&RunFilter::default()).expect("runs");
    assert_eq!(runs.len(), 1);
}

/// A polling workflow whose `splitOn` gives the array `items` once the fake GitHub has new
/// issues (and none before), with an optional concurrency limit.
fn splitting_workflow(items: &str, concurrency: Option<Value>) -> Value {
    let split_on = format!("@if(empty(triggerBody()), triggerBody(), {items})");
    let mut trigger = json!({
        "type": "ServiceProvider",
        "inputs": {
            "parameters": {"owner": "acme", "repo": "widgets"},
            "serviceProviderConfiguration": {"connectionName": "github", "operationId": "new_issue"}
        },
        "recurrence": {"frequency": "Minute", "interval": 1, "startTime": "2026-01-01T00:00:00Z"},
        "splitOn": split_on
    });
    if let Some(concurrency) = concurrency {
        trigger["runtimeConfiguration"] = json!({"concurrency": concurrency});
    }
    json!({
        "triggers": {"Poll": trigger},
        "actions": {"Item": {"type": "Compose", "inputs": "@triggerBody()"}}
    })
}

#[tokio::test]
async fn a_split_on_past_logic_apps_item_limits_fails_the_poll_and_keeps_the_cursor() {
    let fake = FakeGithub::default();
    let addr = serve(fake.router()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(
        dir.path(),
        Some(addr),
        &[
            // One new issue splits into 100,001 items, one past the limit.
            (
                "many",
                splitting_workflow("split(concat(string(range(0, 100000)), ',x'), ',')", None),
            ),
            // With a concurrency limit the limit is 100: 101 fail, 100 start.
            (
                "bounded",
                splitting_workflow("range(0, 101)", Some(json!({"runs": 1}))),
            ),
            (
                "exact",
                splitting_workflow("range(0, 100)", Some(json!({"runs": 1}))),
            ),
        ],
    );
    let (engine, db, _clock) = workflow_engine(dir.path()).await;
    let scheduler = Scheduler::new(engine.clone());
    assert!(
        tick(&scheduler, T0).await.is_empty(),
        "the first polls record cursors"
    );
    let cursors: Vec<Option<Value>> = ["many", "bounded", "exact"]
        .iter()
        .map(|w| {
            db.trigger_state(w, "Poll")
                .expect("state")
                .expect("stored")
                .cursor
        })
        .collect();
    fake.add("the one new issue");

    let runs = tick(&scheduler, T0 + MINUTE).await;
    assert_eq!(runs.len(), 100, "only `exact` started runs");
    assert!(runs.iter().all(|r| r.workflow == "exact"));
    for (workflow, cursor, wanted) in [
        (
            "many",
            &cursors[0],
            "splitOn gave 100001 items, and one poll may start at most 100000 runs",
        ),
        (
            "bounded",
            &cursors[1],
            "splitOn gave 101 items, and one poll may start at most 100 runs (Logic Apps' limit for a trigger with runtimeConfiguration.concurrency)",
        ),
    ] {
        let state = db
            .trigger_state(workflow, "Poll")
            .expect("state")
            .expect("stored");
        assert_eq!(state.failures, 1, "{workflow}");
        assert_eq!(
            &state.cursor, cursor,
            "{workflow}: the items stay to be polled again"
        );
        let error = state.last_error.unwrap_or_default();
        assert!(error.contains(wanted), "{workflow}: {error}");
        let recorded = db
            .list_runs(&RunFilter {
                workflow: Some(workflow.into()),
                ..RunFilter::default()
            })
            .expect("runs");
        assert!(recorded.is_empty(), "{workflow}: no run recorded");
    }
}

/// An endpoint for an Http trigger: answers from a script, in order, and records the path and
/// query of every call.
/// A scripted answer: status, headers, JSON body.
type Answer = (u16, Vec<(&'static str, &'static str)>, Value);

#[derive(Clone, Default)]
struct ScriptedEndpoint {
    answers: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<Answer>>>,
    called: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ScriptedEndpoint {
    fn router(&self) -> axum::Router {
        let endpoint = self.clone();
        axum::Router::new().route(
            "/ready",
            axum::routing::get(move |uri: axum::http::Uri| async move {
                use axum::response::IntoResponse;
                endpoint.called.lock().expect("lock").push(uri.to_string());
                let (status, headers, body) = endpoint
                    .answers
                    .lock()
                    .expect("lock")
                    .pop_front()
                    .expect("a scripted answer for every call");
                let mut response = (
                    axum::http::StatusCode::from_u16(status).expect("status"),
                    axum::Json(body),
                )
                    .into_response();
                for (name, value) in headers {
                    response
                        .headers_mut()
                        .insert(name, value.parse().expect("header value"));
                }
                response
            }),
        )
    }

    fn answer(&self, status: u16, headers: Vec<(&'static str, &'static str)>, body: Value) {
        self.answers
            .lock()
            .expect("lock")
            .push_back((status, headers, body));
    }

    fn called(&self) -> Vec<String> {
        self.called.lock().expect("lock").clone()
    }
}

#[tokio::test]
async fn an_http_trigger_starts_runs_on_200_and_follows_retry_after_and_location() {
    let endpoint = ScriptedEndpoint::default();
    let addr = serve(endpoint.router()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("connections.json"),
        json!({"http": {"grant": {"hosts": [format!("http://{addr}")]}}}).to_string(),
    )
    .expect("write connections.json");
    std::fs::create_dir_all(dir.path().join("orders")).expect("workflow dir");
    let definition = json!({
        "triggers": {"When_orders_are_ready": {
            "type": "Http",
            "inputs": {"method": "GET", "uri": format!("http://{addr}/ready")},
            "recurrence": {"frequency": "Minute", "interval": 1, "startTime": "2026-01-01T00:00:00Z"},
            "splitOn": "@triggerBody()?['orders']",
            "conditions": [{"expression": "@not(equals(triggerBody(), 2))"}]
        }},
        "actions": {"Order": {"type": "Compose", "inputs": "@triggerBody()"}}
    });
    std::fs::write(
        dir.path().join("orders/workflow.json"),
        json!({"definition": definition, "kind": "Stateful"}).to_string(),
    )
    .expect("write workflow.json");
    let (engine, db, _clock) = workflow_engine(dir.path()).await;
    let scheduler = Scheduler::new(engine.clone());
    let state = || {
        db.trigger_state("orders", "When_orders_are_ready")
            .expect("state")
            .expect("stored")
    };

    // 202: nothing yet, and not before Retry-After even though the recurrence comes sooner.
    endpoint.answer(202, vec![("retry-after", "120")], json!({}));
    assert!(tick(&scheduler, T0).await.is_empty());
    assert!(tick(&scheduler, T0 + MINUTE).await.is_empty());
    assert_eq!(endpoint.called().len(), 1, "Retry-After outlasts the recurrence");

    // 200: runs (one per order the condition lets through); the next call goes to the
    // Location, after Retry-After, sooner than the recurrence.
    endpoint.answer(
        200,
        vec![("location", "/ready?page=2"), ("retry-after", "10")],
        json!({"orders": [1, 2, 3]}),
    );
    let runs = tick(&scheduler, T0 + 2 * MINUTE).await;
    let mut orders = Vec::new();
    for run in runs {
        orders.push(output_of(&engine, run, "Order").await);
    }
    orders.sort_by_key(|o| o.to_string());
    assert_eq!(orders, vec![json!(1), json!(3)]);
    assert_eq!(state().next_at, Some(T0 + 2 * MINUTE + 10 * SECOND));

    // An error: nothing starts, the failure is recorded, the Location kept for the next call.
    endpoint.answer(500, vec![], json!({"error": "busy"}));
    assert!(tick(&scheduler, T0 + 2 * MINUTE + 10 * SECOND).await.is_empty());
    let failed = state();
    assert_eq!(failed.failures, 1);
    assert_eq!(failed.last_error.as_deref(), Some("the endpoint answered 500"));
    assert_eq!(
        failed.next_at,
        Some(T0 + 3 * MINUTE),
        "not sooner than the recurrence"
    );

    // 200 with no orders and no Location: no run, and the next call goes to the trigger's uri.
    endpoint.answer(200, vec![], json!({"orders": []}));
    assert!(tick(&scheduler, T0 + 3 * MINUTE).await.is_empty());
    assert_eq!(state().failures, 0);
    endpoint.answer(204, vec![], json!(null));
    assert!(tick(&scheduler, T0 + 4 * MINUTE).await.is_empty());
    assert_eq!(
        endpoint.called(),
        ["/ready", "/ready", "/ready?page=2", "/ready?page=2", "/ready"]
    );

    // Retry-After: 0 after a 200 brings the next call a second later, not in a loop.
    endpoint.answer(200, vec![("retry-after", "0")], json!({"orders": []}));
    assert!(tick(&scheduler, T0 + 5 * MINUTE).await.is_empty());
    assert_eq!(state().next_at, Some(T0 + 5 * MINUTE + SECOND));

    // Retry-After as an HTTP date (T0 is 2026-01-01T00:00:00Z).
    endpoint.answer(
        200,
        vec![("retry-after", "Thu, 01 Jan 2026 00:06:45 GMT")],
        json!({"orders": []}),
    );
    assert!(tick(&scheduler, T0 + 6 * MINUTE).await.is_empty());
    assert_eq!(state().next_at, Some(T0 + 6 * MINUTE + 45 * SECOND));
}
