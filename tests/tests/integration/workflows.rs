//! The workflow engine end to end: real projects on disk, a real SQLite history, the real
//! `http` and `json-transform` connectors, servers on loopback, and a fake clock so retry
//! timing is checked without sleeping.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use cordon_host::db::{ActionRecord, Db, RunRecord, SqliteDb, Status};
use cordon_host::workflow::clock::FakeClock;
use cordon_host::workflow::executor::MAX_RUN_DEPTH;
use cordon_host::workflow::project::Project;
use cordon_host::workflow::{Connections, Engine, validate};
use cordon_tests::{runtime, serve, workflow_engine};
use serde_json::{Value, json};

/// A project written to a temporary directory, with its engine.
struct Harness {
    dir: tempfile::TempDir,
    engine: Engine,
    db: Arc<SqliteDb>,
    clock: Arc<FakeClock>,
}

fn write_project(dir: &std::path::Path, connections: &Value, workflows: &[(&str, Value)]) {
    std::fs::write(dir.join("connections.json"), connections.to_string()).expect("write connections.json");
    std::fs::write(
        dir.join("parameters.json"),
        json!({"greeting": {"type": "String", "value": "hello"}}).to_string(),
    )
    .expect("write parameters.json");
    for (name, actions) in workflows {
        std::fs::create_dir_all(dir.join(name)).expect("workflow dir");
        let workflow = json!({
            "definition": {"triggers": {"manual": {"type": "Request", "kind": "Http"}}, "actions": actions},
            "kind": "Stateful"
        });
        std::fs::write(dir.join(name).join("workflow.json"), workflow.to_string())
            .expect("write workflow.json");
    }
}

async fn harness(server: Option<SocketAddr>, workflows: &[(&str, Value)]) -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let http_hosts: Vec<String> = server.map(|a| format!("http://{a}")).into_iter().collect();
    let connections = json!({
        "serviceProviderConnections": {"transform": {"connector": "json-transform"}},
        "http": {"grant": {"hosts": http_hosts}}
    });
    write_project(dir.path(), &connections, workflows);
    let (engine, db, clock) = workflow_engine(dir.path()).await;
    Harness {
        dir,
        engine,
        db,
        clock,
    }
}

impl Harness {
    async fn run(&self, workflow: &str, body: Value) -> RunRecord {
        self.engine.run(workflow, body).await.expect("run executes")
    }

    fn actions(&self, run: &RunRecord) -> HashMap<String, ActionRecord> {
        self.db
            .actions(&run.id, false)
            .expect("actions")
            .into_iter()
            .map(|a| (a.path.clone(), a))
            .collect()
    }

    fn status(&self, run: &RunRecord, path: &str) -> Status {
        self.actions(run)
            .get(path)
            .unwrap_or_else(|| panic!("no record for {path}"))
            .status
    }
}

/// A ParseJson that always fails, to drive failure handling.
fn failing() -> Value {
    json!({"type": "ParseJson", "inputs": {"content": "not json", "schema": {}}})
}

/// The json-transform connector's parse_csv of the trigger body's `csv`: an array of objects.
fn parse_trigger_csv() -> Value {
    json!({"type": "ServiceProvider", "inputs": {
        "parameters": {"text": "@triggerBody()?['csv']"},
        "serviceProviderConfiguration": {"connectionName": "transform", "operationId": "parse_csv"}}})
}

fn compose(value: Value, run_after: Value) -> Value {
    json!({"type": "Compose", "inputs": value, "runAfter": run_after})
}

#[tokio::test]
async fn run_after_chooses_between_branches_and_a_handled_failure_succeeds() {
    let h = harness(
        None,
        &[(
            "w",
            json!({
                "A": failing(),
                "On_failure": compose(json!("handled"), json!({"A": ["Failed"]})),
                "On_success": compose(json!("not reached"), json!({"A": ["Succeeded"]})),
                "After_skip": compose(json!("runs because On_success was skipped"), json!({"On_success": ["Skipped"]})),
            }),
        )],
    )
    .await;
    let run = h.run("w", Value::Null).await;
    assert_eq!(h.status(&run, "A"), Status::Failed);
    assert_eq!(h.status(&run, "On_failure"), Status::Succeeded);
    assert_eq!(h.status(&run, "On_success"), Status::Skipped);
    assert_eq!(h.status(&run, "After_skip"), Status::Succeeded);
    assert_eq!(
        run.status,
        Status::Succeeded,
        "every last action succeeded, so the failure was handled"
    );
}

#[tokio::test]
async fn an_unhandled_failure_skips_what_follows_and_fails_the_run() {
    let h = harness(
        None,
        &[(
            "w",
            json!({
                "A": failing(),
                "B": compose(json!(1), json!({"A": ["Succeeded"]})),
                "C": compose(json!(2), json!({"B": ["Succeeded"]})),
                "Independent": compose(json!(3), json!({})),
            }),
        )],
    )
    .await;
    let run = h.run("w", Value::Null).await;
    assert_eq!(h.status(&run, "B"), Status::Skipped);
    assert_eq!(h.status(&run, "C"), Status::Skipped);
    assert_eq!(h.status(&run, "Independent"), Status::Succeeded);
    assert_eq!(run.status, Status::Failed);
    let message = run.error.expect("error")["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains('A'), "{message}");
}

#[tokio::test]
async fn actions_read_each_others_outputs_parameters_and_the_trigger() {
    let h = harness(
        None,
        &[(
            "w",
            json!({
                "Parse": parse_trigger_csv(),
                "Names": {"type": "Select", "inputs": {"from": "@body('Parse')", "select": "@toUpper(item()?['name'])"},
                          "runAfter": {"Parse": ["Succeeded"]}},
                "Big": {"type": "Query", "inputs": {"from": "@body('Parse')", "where": "@greater(item()?['n'], 1)"},
                        "runAfter": {"Parse": ["Succeeded"]}},
                "Joined": {"type": "Join", "inputs": {"from": "@body('Names')", "joinWith": "+"},
                           "runAfter": {"Names": ["Succeeded"]}},
                "Result": compose(json!({"greeting": "@{parameters('greeting')}, @{body('Joined')}", "big": "@length(body('Big'))"}),
                                  json!({"Joined": ["Succeeded"], "Big": ["Succeeded"]})),
                "Response": {"type": "Response", "inputs": {"statusCode": 200, "body": "@outputs('Result')"},
                             "runAfter": {"Result": ["Succeeded"]}}
            }),
        )],
    )
    .await;
    let run = h.run("w", json!({"csv": "name,n\nada,1\nbob,2\ncy,3"})).await;
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    assert_eq!(
        run.response.expect("response")["body"],
        json!({"greeting": "hello, ADA+BOB+CY", "big": 2})
    );
}

#[tokio::test]
async fn table_actions_make_csv_and_html_from_an_array() {
    let h = harness(
        None,
        &[(
            "w",
            json!({
                "Parse": parse_trigger_csv(),
                "Csv": {"type": "Table", "inputs": {"format": "CSV", "from": "@body('Parse')"},
                        "runAfter": {"Parse": ["Succeeded"]}},
                "Html": {"type": "Table", "runAfter": {"Parse": ["Succeeded"]}, "inputs": {
                    "format": "HTML", "from": "@body('Parse')",
                    "columns": [{"header": "@{parameters('greeting')} to", "value": "@item()?['name']"},
                                {"header": "Note", "value": "@concat(item()?['n'], ' < 2')"}]}},
                "Values_only": {"type": "Table", "runAfter": {"Parse": ["Succeeded"]}, "inputs": {
                    "format": "CSV", "from": "@body('Parse')",
                    "columns": [{"header": "", "value": "@item()?['name']"}, {"header": "", "value": "@item()?['n']"}]}},
                "Not_objects": {"type": "Table", "inputs": {"format": "CSV", "from": "@createArray(1, 2)"}},
                "Computed_format": {"type": "Table", "runAfter": {"Parse": ["Succeeded"]},
                    "inputs": {"format": "@toLower('CSV')", "from": "@body('Parse')"}},
                "Result": compose(json!({"csv": "@body('Csv')", "html": "@body('Html')", "values": "@body('Values_only')"}),
                                  json!({"Csv": ["Succeeded"], "Html": ["Succeeded"], "Values_only": ["Succeeded"]}))
            }),
        )],
    )
    .await;
    let run = h.run("w", json!({"csv": "name,n\nada,1\n\"b,o\"\"b\",2"})).await;
    // The array of numbers has no columns to take; that fails only its own action.
    assert_eq!(h.status(&run, "Not_objects"), Status::Failed);
    let record = h.actions(&run).remove("Not_objects").expect("record");
    let message = record.error.expect("error")["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("give inputs.columns"), "{message}");
    assert_eq!(h.status(&run, "Result"), Status::Succeeded);
    let result = h
        .actions(&run)
        .remove("Result")
        .and_then(|r| r.outputs)
        .expect("outputs");
    // The columns in the order of the CSV's header, which parse_csv's objects keep.
    assert_eq!(result["csv"], json!("name,n\r\nada,1\r\n\"b,o\"\"b\",2\r\n"));
    assert_eq!(
        result["html"],
        json!(
            "<table><thead><tr><th>hello to</th><th>Note</th></tr></thead><tbody>\
               <tr><td>ada</td><td>1 &lt; 2</td></tr><tr><td>b,o&quot;b</td><td>2 &lt; 2</td></tr></tbody></table>"
        )
    );
    assert_eq!(result["values"], json!("ada,1\r\n\"b,o\"\"b\",2\r\n"));
    let computed = h.actions(&run).remove("Computed_format").and_then(|r| r.outputs);
    assert_eq!(computed.expect("outputs")["body"], result["csv"]);
}

#[tokio::test]
async fn variables_if_switch_scope_and_result() {
    let h = harness(
        None,
        &[(
            "w",
            json!({
                "Init": {"type": "InitializeVariable", "inputs": {"variables": [
                    {"name": "count", "type": "integer", "value": 1},
                    {"name": "log", "type": "string", "value": ""},
                    {"name": "seen", "type": "array", "value": []}]}},
                "Branch": {"type": "If", "expression": "@equals(variables('count'), 1)",
                    "actions": {"Bump": {"type": "IncrementVariable", "inputs": {"name": "count", "value": 4}}},
                    "else": {"actions": {"Wrong": {"type": "AppendToStringVariable", "inputs": {"name": "log", "value": "else"}}}},
                    "runAfter": {"Init": ["Succeeded"]}},
                "Pick": {"type": "Switch", "expression": "@variables('count')",
                    "cases": {"Five": {"case": 5, "actions": {"Note": {"type": "AppendToStringVariable", "inputs": {"name": "log", "value": "five"}}}}},
                    "default": {"actions": {"Other": {"type": "AppendToStringVariable", "inputs": {"name": "log", "value": "other"}}}},
                    "runAfter": {"Branch": ["Succeeded"]}},
                "Work": {"type": "Scope", "actions": {
                    "Ok": {"type": "AppendToArrayVariable", "inputs": {"name": "seen", "value": "ok"}},
                    "Broken": failing()},
                    "runAfter": {"Pick": ["Succeeded"]}},
                "Report": compose(json!({
                    "count": "@variables('count')", "log": "@variables('log')", "seen": "@variables('seen')",
                    "failed": "@length(createArray(result('Work')[0], result('Work')[1]))",
                    "statuses": "@sort(createArray(result('Work')[0].status, result('Work')[1].status))"}),
                    json!({"Work": ["Failed"]})),
                "Down": {"type": "DecrementVariable", "inputs": {"name": "count"}, "runAfter": {"Report": ["Succeeded"]}}
            }),
        )],
    )
    .await;
    let run = h.run("w", Value::Null).await;
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    let actions = h.actions(&run);
    assert_eq!(actions["Work"].status, Status::Failed);
    assert!(
        !actions.contains_key("Wrong"),
        "the else branch never ran, so it has no record"
    );
    assert_eq!(
        actions["Report"].outputs,
        Some(
            json!({"count": 5, "log": "five", "seen": ["ok"], "failed": 2, "statuses": ["Failed", "Succeeded"]})
        )
    );
    assert_eq!(
        actions["Down"].outputs,
        Some(json!({"body": {"name": "count", "value": 4}}))
    );
}

#[tokio::test]
async fn terminate_ends_the_run_with_its_status_and_error() {
    let h = harness(
        None,
        &[(
            "w",
            json!({
                "Stop": {"type": "Terminate", "inputs": {"runStatus": "Failed", "runError": {"code": "Nope", "message": "stopped on purpose"}}},
                "Never": compose(json!(1), json!({"Stop": ["Succeeded"]}))
            }),
        )],
    )
    .await;
    let run = h.run("w", Value::Null).await;
    assert_eq!(run.status, Status::Failed);
    assert_eq!(
        run.error,
        Some(json!({"code": "Nope", "message": "stopped on purpose"}))
    );
    assert!(!h.actions(&run).contains_key("Never"));
}

/// A loopback service whose behaviour the tests script.
#[derive(Clone, Default)]
struct Service {
    calls: Arc<Mutex<HashMap<String, usize>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl Service {
    fn router(&self) -> Router {
        Router::new()
            .route("/fail/{times}/{code}", any(fail_then_succeed))
            .route("/throttle", any(throttle))
            .route("/concurrent", any(concurrent))
            .route("/slow", get(slow))
            .route("/gate/{i}", get(gate))
            .route("/fail-hang-succeed", get(fail_hang_succeed))
            .with_state(self.clone())
    }

    fn count(&self, key: &str) -> usize {
        let mut calls = self.calls.lock().expect("lock");
        let n = calls.entry(key.to_owned()).or_default();
        *n += 1;
        *n
    }
}

/// Fails `times` times with `code`, then answers 200.
async fn fail_then_succeed(State(s): State<Service>, Path((times, code)): Path<(usize, u16)>) -> Response {
    let n = s.count(&format!("fail/{times}/{code}"));
    if n <= times {
        (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "no",
        )
            .into_response()
    } else {
        (StatusCode::OK, axum::Json(json!({"call": n}))).into_response()
    }
}

/// 429 with Retry-After: 2 once, then 200.
async fn throttle(State(s): State<Service>) -> Response {
    if s.count("throttle") == 1 {
        (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "2")], "slow down").into_response()
    } else {
        (StatusCode::OK, "fine").into_response()
    }
}

async fn concurrent(State(s): State<Service>) -> &'static str {
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(40)).await;
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
    "done"
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "too late"
}

fn http(addr: SocketAddr, path: &str, retry: Option<Value>) -> Value {
    let mut inputs = json!({"method": "GET", "uri": format!("http://{addr}{path}")});
    if let Some(retry) = retry {
        inputs["retryPolicy"] = retry;
    }
    json!({"type": "Http", "inputs": inputs})
}

#[tokio::test]
async fn retries_follow_the_policy_on_a_fake_clock() {
    let service = Service::default();
    let addr = serve(service.router()).await;
    let h = harness(
        Some(addr),
        &[
            ("fixed", json!({"Call": http(addr, "/fail/2/503", Some(json!({"type": "fixed", "count": 3, "interval": "PT10S"})))})),
            ("default", json!({"Call": http(addr, "/fail/9/500", None)})),
            ("none", json!({"Call": http(addr, "/fail/1/502", Some(json!({"type": "none"})))})),
            ("not_retryable", json!({"Call": http(addr, "/fail/1/404", None)})),
        ],
    )
    .await;

    let run = h.run("fixed", Value::Null).await;
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    let call = &h.actions(&run)["Call"];
    assert_eq!(call.attempts, 3);
    assert_eq!(
        h.db.attempts(&run.id, "Call").expect("attempts").len(),
        3,
        "one record per attempt"
    );
    assert_eq!(h.clock.sleeps(), vec![Duration::from_secs(10); 2]);

    let before = h.clock.sleeps().len();
    let run = h.run("default", Value::Null).await;
    assert_eq!(run.status, Status::Failed);
    assert_eq!(
        h.actions(&run)["Call"].attempts,
        5,
        "the default policy retries four times"
    );
    let waited: Vec<f64> = h.clock.sleeps()[before..]
        .iter()
        .map(Duration::as_secs_f64)
        .collect();
    assert_eq!(waited, vec![7.5, 15.0, 30.0, 45.0]);
    assert_eq!(
        h.actions(&run)["Call"]
            .outputs
            .as_ref()
            .map(|o| o["statusCode"].clone()),
        Some(json!(500))
    );

    let before = h.clock.sleeps().len();
    let run = h.run("none", Value::Null).await;
    assert_eq!(
        (run.status, h.actions(&run)["Call"].attempts),
        (Status::Failed, 1)
    );
    let run = h.run("not_retryable", Value::Null).await;
    assert_eq!(
        (run.status, h.actions(&run)["Call"].attempts),
        (Status::Failed, 1),
        "a 404 is not retried"
    );
    assert_eq!(h.clock.sleeps().len(), before);
}

#[tokio::test]
async fn retry_after_from_the_service_sets_the_wait() {
    let service = Service::default();
    let addr = serve(service.router()).await;
    let h = harness(
        Some(addr),
        &[("w", json!({"Call": http(addr, "/throttle", None)}))],
    )
    .await;
    let run = h.run("w", Value::Null).await;
    assert_eq!(run.status, Status::Succeeded);
    assert_eq!(h.clock.sleeps(), vec![Duration::from_secs(2)]);
}

#[tokio::test]
async fn an_action_over_its_timeout_is_timed_out_and_run_after_sees_it() {
    let service = Service::default();
    let addr = serve(service.router()).await;
    let mut call = http(addr, "/slow", Some(json!({"type": "none"})));
    call["limit"] = json!({"timeout": "PT0.3S"});
    let h = harness(
        Some(addr),
        &[(
            "w",
            json!({"Call": call, "Cleanup": compose(json!("after timeout"), json!({"Call": ["TimedOut"]}))}),
        )],
    )
    .await;
    let run = h.run("w", Value::Null).await;
    assert_eq!(h.status(&run, "Call"), Status::TimedOut);
    assert_eq!(h.status(&run, "Cleanup"), Status::Succeeded);
    assert_eq!(run.status, Status::Succeeded, "the timeout was handled");
}

#[tokio::test]
async fn foreach_runs_at_most_its_concurrency_at_once() {
    let service = Service::default();
    let addr = serve(service.router()).await;
    let foreach = |options: Value| {
        let mut action = json!({
            "type": "Foreach",
            "foreach": "@range(0, 12)",
            "actions": {"Call": http(addr, "/concurrent", None)}
        });
        for (k, v) in options.as_object().expect("object") {
            action[k] = v.clone();
        }
        action
    };
    let h = harness(
        Some(addr),
        &[
            ("five", json!({"Loop": foreach(json!({"runtimeConfiguration": {"concurrency": {"repetitions": 5}}}))})),
            ("sequential", json!({"Loop": foreach(json!({"operationOptions": "Sequential"}))})),
        ],
    )
    .await;
    let run = h.run("five", Value::Null).await;
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    let max = service.max_in_flight.swap(0, Ordering::SeqCst);
    assert!(
        (2..=5).contains(&max),
        "at most 5 iterations at once (and more than one), saw {max}"
    );
    let actions = h.actions(&run);
    assert_eq!(
        (0..12)
            .filter(|i| actions.contains_key(&format!("Loop[{i}]/Call")))
            .count(),
        12
    );

    let run = h.run("sequential", Value::Null).await;
    assert_eq!(run.status, Status::Succeeded);
    assert_eq!(service.max_in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn until_stops_on_its_condition_or_its_count() {
    let h = harness(
        None,
        &[
            (
                "counts",
                json!({
                    "Init": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "n", "type": "integer", "value": 0}]}},
                    "Loop": {"type": "Until", "expression": "@equals(variables('n'), 4)", "limit": {"count": 10},
                             "actions": {"Step": {"type": "IncrementVariable", "inputs": {"name": "n"}}},
                             "runAfter": {"Init": ["Succeeded"]}}
                }),
            ),
            (
                "timed",
                json!({"Loop": {"type": "Until", "expression": "@equals(1, 2)", "limit": {"count": 60, "timeout": "PT1M"},
                                "actions": {"Pause": {"type": "Wait", "inputs": {"interval": {"count": 25, "unit": "Second"}}}}}}),
            ),
            (
                "limited",
                json!({"Loop": {"type": "Until", "expression": "@equals(1, 2)", "limit": {"count": 3},
                                "actions": {"Step": compose(json!("@iterationIndexes('Loop')"), json!({}))}}}),
            ),
        ],
    )
    .await;
    let run = h.run("counts", Value::Null).await;
    assert_eq!(
        h.actions(&run)["Loop"].outputs,
        Some(json!({"iterations": 4, "limitReached": false}))
    );
    let run = h.run("timed", Value::Null).await;
    assert_eq!(
        h.actions(&run)["Loop"].outputs,
        Some(json!({"iterations": 3, "limitReached": true})),
        "25 s per iteration on the fake clock passes PT1M during the third"
    );
    let run = h.run("limited", Value::Null).await;
    assert_eq!(run.status, Status::Succeeded);
    let actions = h.actions(&run);
    assert_eq!(
        actions["Loop"].outputs,
        Some(json!({"iterations": 3, "limitReached": true}))
    );
    assert_eq!(actions["Loop[2]/Step"].outputs, Some(json!(2)));
}

#[tokio::test]
async fn secure_data_stays_out_of_the_history_but_reaches_later_actions() {
    let h = harness(
        None,
        &[(
            "w",
            json!({
                "Secret": {"type": "Compose", "inputs": "s3cr3t-value",
                           "runtimeConfiguration": {"secureData": {"properties": ["inputs", "outputs"]}}},
                "Uses": compose(json!("@length(outputs('Secret'))"), json!({"Secret": ["Succeeded"]}))
            }),
        )],
    )
    .await;
    let run = h.run("w", Value::Null).await;
    let actions = h.actions(&run);
    assert_eq!(actions["Secret"].inputs, None);
    assert_eq!(actions["Secret"].outputs, None);
    assert_eq!(actions["Uses"].outputs, Some(json!(12)));
    let with_state = h.db.actions(&run.id, true).expect("actions");
    assert!(
        with_state
            .iter()
            .all(|a| a.outputs != Some(json!("s3cr3t-value"))),
        "secure values are deleted when the run finishes"
    );
}

#[tokio::test]
async fn a_workflow_action_runs_a_child_and_gets_its_response() {
    let h = harness(
        None,
        &[
            ("parent", json!({"Call": {"type": "Workflow", "inputs": {"host": {"workflow": {"id": "child"}}, "body": {"x": 20}}}}),),
            (
                "child",
                json!({"Reply": {"type": "Response", "inputs": {"statusCode": 201, "body": "@add(triggerBody()?['x'], 1)"}}}),
            ),
        ],
    )
    .await;
    let run = h.run("parent", Value::Null).await;
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    let outputs = h.actions(&run)["Call"].outputs.clone().expect("outputs");
    assert_eq!(
        (outputs["statusCode"].clone(), outputs["body"].clone()),
        (json!(201), json!(21))
    );
    let child =
        h.db.run(outputs["runId"].as_str().expect("child run id"))
            .expect("child run");
    assert_eq!(child.parent.as_deref(), Some(run.id.as_str()));
}

#[tokio::test]
async fn a_workflow_that_calls_itself_without_end_fails_at_the_nesting_limit() {
    // The call sits inside an If inside a Scope, so each level nests containers as well as
    // runs: before the limit this ran until the process overflowed its stack and died, and
    // every restart resumed the run into the same crash.
    let again = json!({"type": "Workflow", "inputs": {"host": {"workflow": {"id": "descend"}}, "body": {}}});
    let h = harness(
        None,
        &[(
            "descend",
            json!({"Outer": {"type": "Scope", "actions": {"Check": {"type": "If",
                "expression": {"and": [{"equals": [1, 1]}]},
                "actions": {"Again": again}, "else": {"actions": {}}}}}}),
        )],
    )
    .await;
    let top = h.run("descend", Value::Null).await;
    assert_eq!(top.status, Status::Failed);

    // Follow the chain of children down to the run whose call was refused.
    let mut run = top;
    let mut depth = 0;
    let refused = loop {
        let call = h.actions(&run)["Again"].clone();
        assert_eq!(call.status, Status::Failed, "depth {depth}");
        let error = call.error.clone().expect("a failed call has an error");
        if error["code"] == "WorkflowNestingTooDeep" {
            break error;
        }
        assert_eq!(error["code"], "ChildWorkflowFailed", "depth {depth}: {error}");
        let message = error["message"].as_str().expect("message");
        assert!(
            message.ends_with("ended Failed: an action failed: Outer"),
            "{message}"
        );
        let child_id = call.outputs.as_ref().expect("outputs")["runId"]
            .as_str()
            .expect("child run id")
            .to_owned();
        run = h.db.run(&child_id).expect("child run");
        assert_eq!(run.status, Status::Failed);
        depth += 1;
        assert!(depth <= MAX_RUN_DEPTH, "children nest past the limit");
    };
    assert_eq!(depth, MAX_RUN_DEPTH, "the run at the limit is the one refused");
    let message = refused["message"].as_str().expect("message");
    assert!(
        message.contains("nest at most 16 deep") && message.contains("\"descend\" call itself"),
        "{message}"
    );
}

/// `[[...[]...]]`, `depth` arrays inside one another.
fn nested_arrays(depth: usize) -> Value {
    (0..depth).fold(Value::Null, |inner, _| {
        Value::Array(if inner.is_null() { vec![] } else { vec![inner] })
    })
}

#[tokio::test]
async fn values_as_deep_as_json_allows_survive_the_history_and_deeper_ones_fail_the_action() {
    let h = harness(
        None,
        &[
            ("echo", json!({"Show": {"type": "Compose", "inputs": "@triggerBody()"}})),
            (
                "grow",
                json!({
                    "Init": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "x", "type": "array", "value": []}]}},
                    "Grow": {"type": "Until", "expression": "@equals(1, 2)", "limit": {"count": 1000},
                        "runAfter": {"Init": ["Succeeded"]},
                        "actions": {
                            "Wrap": {"type": "Compose", "inputs": "@createArray(variables('x'))"},
                            "Set": {"type": "SetVariable", "inputs": {"name": "x", "value": "@outputs('Wrap')"},
                                "runAfter": {"Wrap": ["Succeeded"]}}
                        }}
                }),
            ),
        ],
    )
    .await;

    // The deepest body a JSON parser accepts is 127 arrays; inside the trigger record it is
    // deeper than that, and the history used to read it back as nothing, so a resubmitted
    // run got a null body.
    let body = nested_arrays(127);
    let run = h.run("echo", body.clone()).await;
    assert_eq!(run.status, Status::Succeeded);
    let resubmitted = h.engine.resubmit(&run.id).await.expect("resubmit");
    assert_eq!(
        h.db.run(&resubmitted.id).expect("run").trigger["outputs"]["body"],
        body
    );
    assert_eq!(h.actions(&resubmitted)["Show"].outputs, Some(body));

    // A loop that wraps a variable in itself: the wrap past the limit fails (it used to grow
    // until writing or dropping the value overflowed the stack).
    let run = h.run("grow", Value::Null).await;
    assert_eq!(run.status, Status::Failed);
    let actions = h.actions(&run);
    let failed: Vec<&ActionRecord> = actions.values().filter(|a| a.status == Status::Failed).collect();
    let wraps: Vec<&str> = failed
        .iter()
        .map(|a| a.path.as_str())
        .filter(|p| p.ends_with("/Wrap"))
        .collect();
    // Iteration i wraps x into i + 2 arrays: iteration 127 would make 129.
    assert_eq!(wraps, ["Grow[127]/Wrap"]);
    let message = actions["Grow[127]/Wrap"].error.as_ref().expect("error")["message"].to_string();
    assert!(
        message.contains("nests more than 128 arrays and objects"),
        "{message}"
    );
    // What the loop did record reads back, the deepest set included.
    let last_set = actions["Grow[126]/Set"].outputs.as_ref().expect("outputs");
    assert_eq!(last_set["body"]["value"], nested_arrays(128));
}

#[tokio::test]
async fn a_loop_that_doubles_a_string_fails_at_the_size_limit_instead_of_exhausting_memory() {
    // Thirty doublings took all 24 GiB of the machine and the kernel killed the process.
    let h = harness(
        None,
        &[(
            "double",
            json!({
                "Init": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "s", "type": "string", "value": "ab"}]}},
                "Grow": {"type": "Until", "expression": "@equals(1, 2)", "limit": {"count": 40},
                    "runAfter": {"Init": ["Succeeded"]},
                    "actions": {
                        "Twice": {"type": "Compose", "inputs": "@concat(variables('s'), variables('s'))"},
                        "Set": {"type": "SetVariable", "inputs": {"name": "s", "value": "@outputs('Twice')"},
                            "runAfter": {"Twice": ["Succeeded"]}}
                    }}
            }),
        )],
    )
    .await;
    let run = h.run("double", Value::Null).await;
    assert_eq!(run.status, Status::Failed);
    let actions = h.actions(&run);
    let failed: Vec<&str> = actions
        .values()
        .filter(|a| a.status == Status::Failed && a.kind == "Compose")
        .map(|a| a.path.as_str())
        .collect();
    // Iteration i composes 2^(i + 2) characters; at i = 23 that is 32 MiB, plus its quotes.
    assert_eq!(failed, ["Grow[23]/Twice"]);
    let error = actions["Grow[23]/Twice"].error.as_ref().expect("error")["message"].to_string();
    assert!(error.contains("larger than 32 MiB"), "{error}");
    let last = &actions["Grow[22]/Set"].outputs.as_ref().expect("outputs")["body"]["value"];
    assert_eq!(last.as_str().map(str::len), Some(1 << 24));
}

#[tokio::test]
async fn actions_that_build_values_are_held_to_the_same_bounds() {
    // About 600 KB of text: each action below would build gigabytes from it.
    let big = "@string(range(0, 100000))";
    let h = harness(
        None,
        &[(
            "build",
            json!({
                "Init": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "list", "type": "array", "value": []}]}},
                "Glue": {"type": "Join", "inputs": {"from": "@range(0, 100000)", "joinWith": big},
                    "runAfter": {"Init": ["Succeeded"]}},
                "Copies": {"type": "Select", "inputs": {"from": "@range(0, 100)", "select": big},
                    "runAfter": {"Init": ["Succeeded"]}},
                "Deep": {"type": "Compose", "inputs": format!("@createArray(json('{}{}'))", "[".repeat(127), "]".repeat(127)),
                    "runAfter": {"Init": ["Succeeded"]}},
                "Append": {"type": "AppendToArrayVariable", "inputs": {"name": "list", "value": "@outputs('Deep')"},
                    "runAfter": {"Deep": ["Succeeded"]}}
            }),
        )],
    )
    .await;
    let run = h.run("build", Value::Null).await;
    assert_eq!(run.status, Status::Failed);
    let actions = h.actions(&run);
    let error = |name: &str| {
        let action = &actions[name];
        assert_eq!(action.status, Status::Failed, "{name}");
        action.error.as_ref().expect("error")["message"]
            .as_str()
            .expect("message")
            .to_owned()
    };
    assert!(error("Glue").contains("larger than 32 MiB"), "{}", error("Glue"));
    assert!(
        error("Copies").contains("larger than 32 MiB"),
        "{}",
        error("Copies")
    );
    assert_eq!(actions["Deep"].status, Status::Succeeded, "128 deep is allowed");
    assert!(
        error("Append").contains("appending to variable \"list\": the value nests more than 128"),
        "{}",
        error("Append")
    );
}

#[tokio::test]
async fn resubmitting_a_run_of_a_removed_workflow_is_refused_and_records_nothing() {
    let h = harness(
        None,
        &[
            ("old", json!({"C": compose(json!(1), json!({}))})),
            ("kept", json!({"C": compose(json!(2), json!({}))})),
        ],
    )
    .await;
    let run = h.run("old", Value::Null).await;
    assert_eq!(run.status, Status::Succeeded);

    // The project changes: "old" is gone. A new engine on the same history.
    std::fs::remove_dir_all(h.dir.path().join("old")).expect("remove workflow");
    let (engine, db, _clock) = workflow_engine(h.dir.path()).await;
    let runs_before = db.list_runs(&Default::default()).expect("runs").len();
    let error = engine.resubmit(&run.id).await.expect_err("nothing to run");
    let gone = error
        .downcast_ref::<cordon_host::workflow::NoSuchWorkflow>()
        .expect("a NoSuchWorkflow, which the server answers with 409");
    assert_eq!(gone.workflow, "old");
    assert!(
        format!("{error:#}").contains(&format!(
            "cannot resubmit run {}: there is no workflow \"old\"",
            run.id
        )),
        "{error:#}"
    );
    assert_eq!(
        db.list_runs(&Default::default()).expect("runs").len(),
        runs_before,
        "no failed run recorded"
    );
}

#[tokio::test]
async fn validation_names_the_workflow_the_action_and_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let connections = json!({"serviceProviderConnections": {"transform": {"connector": "json-transform"}}});
    write_project(
        dir.path(),
        &connections,
        &[(
            "broken",
            json!({
                "Typo": {"type": "Compse", "inputs": 1},
                "Orphan": compose(json!(1), json!({"Missing": ["Succeeded"]})),
                "Loop_a": compose(json!(1), json!({"Loop_b": ["Succeeded"]})),
                "Loop_b": compose(json!(1), json!({"Loop_a": ["Succeeded"]})),
                "Bad_expr": compose(json!({"x": "@concat('a'"}), json!({})),
                "Unknown_fn": compose(json!("@frobnicate(1)"), json!({})),
                "Arity": compose(json!("@add(1)"), json!({})),
                "Ref": compose(json!("@body('Nowhere')"), json!({})),
                "No_connection": {"type": "ServiceProvider", "inputs": {"parameters": {},
                    "serviceProviderConfiguration": {"connectionName": "nope", "operationId": "echo"}}},
                "No_operation": {"type": "ServiceProvider", "inputs": {"parameters": {},
                    "serviceProviderConfiguration": {"connectionName": "transform", "operationId": "frobnicate"}}},
                "Bad_input": {"type": "ServiceProvider", "inputs": {"parameters": {"text": 5},
                    "serviceProviderConfiguration": {"connectionName": "transform", "operationId": "parse_csv"}}},
                "Bad_status": {"type": "Response", "inputs": {"statusCode": 999, "body": "@triggerBody()"}},
                "Computed_status": {"type": "Response", "inputs": {"statusCode": "@add(200, 1)"}},
                "Bad_end": {"type": "Terminate", "inputs": {"runStatus": "Exploded"}},
                "Bad_wait": {"type": "Wait", "inputs": {"interval": {"count": 1, "unit": "Eon"}}},
                "Unset": {"type": "SetVariable", "inputs": {"name": "never_initialized", "value": 1}},
                "No_method": {"type": "Http", "inputs": {"uri": "http://127.0.0.1:9/"}},
                "No_token": {"type": "Http", "inputs": {"method": "GET", "uri": "http://127.0.0.1:9/",
                    "authentication": {"type": "Bearer"}}},
                "Stray_callback_url": {"type": "Compose", "inputs": {"url": "@{listCallbackUrl()}"}},
                "No_subscribe": {"type": "HttpWebhook", "inputs": {"unsubscribe": {"method": "POST", "uri": "http://127.0.0.1:9/"}}},
                "Bad_unsubscribe": {"type": "HttpWebhook", "inputs": {
                    "subscribe": {"method": "POST", "uri": "http://127.0.0.1:9/", "body": "@{listCallbackUrl()}"},
                    "unsubscribe": {"uri": "http://127.0.0.1:9/"}}},
                "Computed_method": {"type": "Http", "inputs": {"uri": "http://127.0.0.1:9/", "method": "@triggerBody()"}},
                "Call_scheduled": {"type": "Workflow", "inputs": {"host": {"workflow": {"id": "scheduled"}}}},
                "Framing_header": {"type": "Response", "inputs": {"statusCode": 200, "headers": {"Content-Length": "3"}}},
                "Same_case": {"type": "Switch", "expression": "@triggerBody()", "cases": {
                    "First": {"case": "x", "actions": {}}, "Second": {"case": "x", "actions": {}},
                    "Listed": {"case": ["y"], "actions": {}}}},
                "Bad_schema": {"type": "ParseJson", "inputs": {"content": "{}", "schema": {"type": "nonsense"}}},
                "Bad_condition": {"type": "If", "expression": "yes", "actions": {}, "else": {"actions": {}}},
                "Literal_condition": {"type": "If", "expression": {"and": [{"equals": [1, 1]}]}, "actions": {}},
                "Bad_table_format": {"type": "Table", "inputs": {"format": "XLSX", "from": []}},
                "Table_without_from": {"type": "Table", "inputs": {"format": "CSV"}},
                "Bad_columns": {"type": "Table", "inputs": {"format": "HTML", "from": [], "columns": [{"header": "a"}]}},
                "Computed_format": {"type": "Table", "inputs": {"format": "@triggerBody()", "from": []}},
                "Misspelt_option": {"type": "Http", "operationOptions": "DisableAsyncPatern",
                    "inputs": {"method": "GET", "uri": "http://127.0.0.1:9/"}}
            }),
        )],
    );
    std::fs::create_dir_all(dir.path().join("malformed")).expect("dir");
    std::fs::write(dir.path().join("malformed/workflow.json"), r#"{"definition": {"#).expect("write");
    std::fs::create_dir_all(dir.path().join("bad_trigger")).expect("dir");
    let bad_trigger = json!({"kind": "Stateful", "definition": {
        "triggers": {"manual": {"type": "Request", "kind": "Http",
                                "inputs": {"method": "FETCH", "relativePath": "orders/{id}/{id}",
                                           "schema": {"type": "no-such-type"}}}},
        "actions": {}}});
    std::fs::write(
        dir.path().join("bad_trigger/workflow.json"),
        bad_trigger.to_string(),
    )
    .expect("write");
    std::fs::create_dir_all(dir.path().join("scheduled")).expect("dir");
    let scheduled = json!({"kind": "Stateful", "definition": {
        "triggers": {"daily": {"type": "Recurrence", "recurrence": {"frequency": "Day", "interval": 1}}},
        "actions": {}}});
    std::fs::write(dir.path().join("scheduled/workflow.json"), scheduled.to_string()).expect("write");
    std::fs::create_dir_all(dir.path().join("hooked")).expect("dir");
    let hooked = json!({"kind": "Stateful", "definition": {
        "triggers": {"hook": {"type": "HttpWebhook", "splitOn": "@triggerBody()",
                              "inputs": {"unsubscribe": {"method": "POST", "uri": "http://127.0.0.1:9/"}}}},
        "actions": {}}});
    std::fs::write(dir.path().join("hooked/workflow.json"), hooked.to_string()).expect("write");
    std::fs::create_dir_all(dir.path().join("polled")).expect("dir");
    let polled = json!({"kind": "Stateful", "definition": {
        "triggers": {"ready": {"type": "Http", "inputs": {"method": "FETCH", "uri": "http://127.0.0.1:9/ready"}}},
        "actions": {}}});
    std::fs::write(dir.path().join("polled/workflow.json"), polled.to_string()).expect("write");

    let project = Project::open(dir.path()).expect("project opens");
    let (connections, mut problems) = Connections::load(&project, &runtime(), None, None)
        .await
        .expect("connections");
    problems.extend(project.problems.iter().cloned());
    problems.extend(validate::validate(&project, &connections));
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let expect = |action: Option<&str>, path: &str, message: &str| {
        assert!(
            problems.iter().any(|p| p.action.as_deref() == action
                && p.path.contains(path)
                && p.message.contains(message)),
            "no problem for {action:?} at {path} containing {message:?} in:\n{}",
            text.join("\n")
        );
    };
    // Inputs computed by an expression are the run's to check, not validate's.
    let left_to_the_run = |action: &str| {
        assert!(
            !problems.iter().any(|p| p.action.as_deref() == Some(action)),
            "{action} is computed, so the run checks it:\n{}",
            text.join("\n")
        );
    };
    expect(None, "$", "malformed JSON");
    expect(
        Some("Typo"),
        "$.definition.actions.Typo.type",
        "unknown action type \"Compse\"; did you mean Compose?",
    );
    expect(
        Some("Misspelt_option"),
        "$.definition.actions.Misspelt_option.operationOptions",
        "did you mean DisableAsyncPattern?",
    );
    expect(
        Some("Orphan"),
        "runAfter.Missing",
        "not an action at the same level",
    );
    expect(Some("Loop_a"), "runAfter", "cycle");
    expect(
        Some("Bad_expr"),
        "$.definition.actions.Bad_expr.inputs.x",
        "expected `,` or `)`",
    );
    expect(Some("Unknown_fn"), "inputs", "unknown function \"frobnicate\"");
    expect(Some("Arity"), "inputs", "add takes 2 arguments, got 1");
    expect(
        Some("Ref"),
        "inputs",
        "body('Nowhere') names an action that does not exist",
    );
    expect(
        Some("No_connection"),
        "connectionName",
        "connection \"nope\" is not in connections.json",
    );
    expect(
        Some("No_operation"),
        "operationId",
        "has no operation \"frobnicate\"",
    );
    expect(
        Some("Bad_input"),
        "inputs.parameters",
        "does not fit the input schema",
    );
    expect(
        Some("Bad_status"),
        "inputs.statusCode",
        "statusCode must be an HTTP status from 100 to 599, got 999",
    );
    left_to_the_run("Computed_status");
    expect(
        Some("Bad_end"),
        "inputs.runStatus",
        "Succeeded, Failed or Cancelled",
    );
    expect(Some("Bad_wait"), "inputs", "unknown unit \"Eon\"");
    expect(
        Some("ready"),
        "triggers.ready.recurrence",
        "a polling trigger needs \"recurrence\"",
    );
    expect(
        Some("ready"),
        "triggers.ready.inputs.method",
        "method \"FETCH\" is not one the http connector sends",
    );
    expect(
        Some("Bad_table_format"),
        "Bad_table_format.inputs.format",
        "\"CSV\" or \"HTML\", got string \"XLSX\"",
    );
    expect(
        Some("Table_without_from"),
        "inputs.from",
        "a Table needs inputs.from",
    );
    expect(Some("Bad_columns"), "inputs.columns", "inputs.columns[0] must be");
    left_to_the_run("Computed_format");
    expect(
        Some("Same_case"),
        "cases.Second.case",
        "case \"Second\" has the same value as case \"First\"",
    );
    expect(
        Some("Same_case"),
        "cases.Listed.case",
        "a case value must be a string or a number",
    );
    expect(Some("Bad_schema"), "inputs.schema", "the schema does not compile");
    expect(
        Some("Bad_condition"),
        "$.definition.actions.Bad_condition.expression",
        "the condition must be true or false, got \"yes\"",
    );
    assert!(
        !problems
            .iter()
            .any(|p| p.action.as_deref() == Some("Literal_condition")),
        "a condition object with constants is fine:\n{}",
        text.join("\n")
    );
    expect(
        Some("Framing_header"),
        "inputs.headers",
        "header \"Content-Length\" is set by the server",
    );
    expect(
        Some("Call_scheduled"),
        "inputs.host.workflow.id",
        "workflow \"scheduled\" has no Request trigger",
    );
    expect(
        Some("Unset"),
        "inputs.name",
        "variable \"never_initialized\" is not initialized",
    );
    expect(
        Some("No_method"),
        "$.definition.actions.No_method.inputs",
        "is not a request the http connector takes: \"method\" is a required property",
    );
    left_to_the_run("Computed_method");
    expect(
        Some("No_token"),
        "$.definition.actions.No_token.inputs.authentication",
        "Bearer authentication takes the secret \"token\" of the project's http connection: add \"token\": \"@secret('NAME')\" to connections.json's http.parameterValues",
    );
    expect(
        Some("hook"),
        "$.definition.triggers.hook.inputs.subscribe",
        "an HttpWebhook needs inputs.subscribe",
    );
    expect(
        Some("hook"),
        "$.definition.triggers.hook.splitOn",
        "splitOn applies to polling triggers",
    );
    expect(
        Some("Stray_callback_url"),
        "$.definition.actions.Stray_callback_url.inputs.url",
        "listCallbackUrl() has a value only in the inputs of an HttpWebhook action",
    );
    expect(
        Some("No_subscribe"),
        "$.definition.actions.No_subscribe.inputs.subscribe",
        "an HttpWebhook needs inputs.subscribe",
    );
    expect(
        Some("Bad_unsubscribe"),
        "$.definition.actions.Bad_unsubscribe.inputs.unsubscribe",
        "is not a request the http connector takes: \"method\" is a required property",
    );
    assert_eq!(
        problems
            .iter()
            .filter(|p| p.action.as_deref() == Some("Bad_unsubscribe"))
            .count(),
        1,
        "its subscribe request is fine (listCallbackUrl() is the run's to give):\n{}",
        text.join("\n")
    );
    assert!(problems.iter().any(|p| p.workflow == "malformed"));
    expect(
        Some("manual"),
        "$.definition.triggers.manual.inputs.method",
        "method \"FETCH\" is not one of GET, POST, PUT, PATCH, DELETE",
    );
    expect(
        Some("manual"),
        "$.definition.triggers.manual.inputs.relativePath",
        "names the parameter \"id\" twice",
    );
    expect(
        Some("manual"),
        "$.definition.triggers.manual.inputs.schema",
        "the schema does not compile",
    );
}

#[tokio::test]
async fn a_variable_step_that_overflows_fails_the_action_and_the_run_goes_on() {
    // (start, action, step): each overflows a 64-bit integer.
    let cases = [
        (json!(i64::MAX), "IncrementVariable", json!(1)),
        (json!(i64::MIN), "DecrementVariable", json!(1)),
        (json!(0), "DecrementVariable", json!(i64::MIN)),
        (json!(-1), "IncrementVariable", json!(i64::MIN)),
    ];
    for (start, kind, step) in cases {
        let h = harness(
            None,
            &[(
                "w",
                json!({
                    "Init": {"type": "InitializeVariable", "inputs": {"variables": [
                        {"name": "n", "type": "integer", "value": start}]}},
                    "Step": {"type": kind, "inputs": {"name": "n", "value": step},
                             "runAfter": {"Init": ["Succeeded"]}},
                    "Handled": compose(json!("@variables('n')"), json!({"Step": ["Failed"]}))
                }),
            )],
        )
        .await;
        let run = h.run("w", Value::Null).await;
        let actions = h.actions(&run);
        let message = actions["Step"].error.as_ref().map(|e| e["message"].to_string());
        assert_eq!(actions["Step"].status, Status::Failed, "{kind} {start} by {step}");
        assert!(
            message
                .as_deref()
                .is_some_and(|m| m.contains("overflow a 64-bit integer")),
            "{kind} {start} by {step}: {message:?}"
        );
        // The variable keeps its value, and the run carries on past the handled failure.
        assert_eq!(
            actions["Handled"].outputs,
            Some(start.clone()),
            "{kind} {start} by {step}"
        );
        assert_eq!(run.status, Status::Succeeded);
    }
}

#[tokio::test]
async fn a_wait_longer_than_a_duration_can_hold_fails_the_action() {
    let h = harness(
        None,
        &[(
            "w",
            json!({
                // Computed, so that validation leaves it to the run (a literal is refused before).
                "Forever": {"type": "Wait", "inputs": {"interval": {"count": "@float('1e300')", "unit": "Month"}}},
                "Handled": compose(json!("after"), json!({"Forever": ["Failed"]}))
            }),
        )],
    )
    .await;
    let run = h.run("w", Value::Null).await;
    let actions = h.actions(&run);
    assert_eq!(actions["Forever"].status, Status::Failed);
    let error = actions["Forever"].error.clone().unwrap_or_default();
    assert_eq!(error["code"], "InvalidWait", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("longer than any wait can be")),
        "{error}"
    );
    assert_eq!(actions["Handled"].status, Status::Succeeded);
}

#[test]
fn a_connections_file_of_the_wrong_shape_is_a_problem_not_an_empty_project() {
    let cases = [
        (json!([]), "$", "must be an object"),
        (
            json!({"serviceProviderConnections": 5}),
            "$.serviceProviderConnections",
            "must be an object of connections by name",
        ),
        (
            json!({"serviceProviderConnections": ["csv"]}),
            "$.serviceProviderConnections",
            "must be an object of connections by name",
        ),
        (
            json!({"serviceProviderConnections": {"gh": "github"}}),
            "$.serviceProviderConnections.gh",
            "a connection must be an object",
        ),
        (
            json!({"serviceProviderConnections": {"gh": {"connector": "github",
                "secrets": {"token": "@secret('gh')"}}}}),
            "$.serviceProviderConnections.gh.secrets",
            "unknown key \"secrets\"; a connection takes connector, parameterValues, grant",
        ),
    ];
    for (connections, path, message) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        write_project(dir.path(), &connections, &[]);
        let project = Project::open(dir.path()).expect("project opens");
        assert!(
            project
                .problems
                .iter()
                .any(|p| p.path == path && p.message.contains(message)),
            "{connections}: no problem at {path} containing {message:?} in {:?}",
            project.problems
        );
    }
}

/// 503 on the first call, no answer for a minute on the second, 200 after that.
async fn fail_hang_succeed(State(s): State<Service>) -> Response {
    match s.count("fail-hang-succeed") {
        1 => (StatusCode::SERVICE_UNAVAILABLE, "not yet").into_response(),
        2 => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            (StatusCode::OK, "too late").into_response()
        }
        _ => (StatusCode::OK, "fine").into_response(),
    }
}

/// `/gate/{i}` hangs on its first call for i = 2 (until the test abandons the run) and answers
/// at once otherwise; every call is counted.
async fn gate(State(s): State<Service>, Path(i): Path<usize>) -> &'static str {
    if s.count(&format!("gate/{i}")) == 1 && i == 2 {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    "open"
}

#[tokio::test]
async fn another_worker_resumes_an_abandoned_run_replaying_variables_and_loop_iterations() {
    let service = Service::default();
    let addr = serve(service.router()).await;
    let actions = json!({
        "Init": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "count", "type": "integer", "value": 0}]}},
        "Loop": {"type": "Foreach", "foreach": "@range(0, 4)", "operationOptions": "Sequential",
                 "actions": {
                     "Bump": {"type": "IncrementVariable", "inputs": {"name": "count"}},
                     "Call": {"type": "Http", "inputs": {"method": "GET", "uri": format!("http://{addr}/gate/@{{item()}}")},
                              "runAfter": {"Bump": ["Succeeded"]}}},
                 "runAfter": {"Init": ["Succeeded"]}},
        "Total": compose(json!("@variables('count')"), json!({"Loop": ["Succeeded"]}))
    });
    let h = harness(Some(addr), &[("w", actions)]).await;

    // The first worker stops (as if it died) while iteration 2 waits on the gate.
    let engine = h.engine.clone();
    let first = tokio::spawn(async move { engine.run("w", Value::Null).await });
    let mut waited = 0;
    while service.calls.lock().expect("lock").get("gate/2").is_none() {
        assert!(waited < 600, "the run never reached iteration 2");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    first.abort();
    let _ = first.await;

    // A second worker, whose clock is past the first one's lease, takes the run over.
    let project = Project::open(h.dir.path()).expect("project");
    let mut options = cordon_host::workflow::EngineOptions::new(h.db.clone());
    options.clock = Arc::new(FakeClock::starting_at(1_700_000_000_000 + 120_000));
    options.lease_owner = "other-worker:1".to_owned();
    let second = Engine::open(&project, &runtime(), options).await.expect("engine");
    let resumed = second.resume_interrupted().await.expect("resume");
    assert_eq!(resumed.len(), 1);
    let run = &resumed[0];
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    let records = h.actions(run);
    assert_eq!(
        records["Total"].outputs,
        Some(json!(4)),
        "replayed increments were applied once, not again"
    );
    let calls = service.calls.lock().expect("lock").clone();
    assert_eq!(
        (calls["gate/0"], calls["gate/1"], calls["gate/2"], calls["gate/3"]),
        (1, 1, 2, 1)
    );
    assert_eq!(
        records["Loop[2]/Call"].attempts, 2,
        "the abandoned attempt counts"
    );
    assert_eq!(records["Loop[0]/Call"].attempts, 1);
}

#[tokio::test]
async fn instant_actions_are_recorded_before_an_action_that_reaches_outside_starts() {
    let service = Service::default();
    let addr = serve(service.router()).await;
    let actions = json!({
        "A": compose(json!("@triggerBody()?['n']"), json!({})),
        "B": compose(json!("@add(outputs('A'), 1)"), json!({"A": ["Succeeded"]})),
        "Call": {"type": "Http", "inputs": {"method": "GET", "uri": format!("http://{addr}/gate/2")},
                 "runAfter": {"B": ["Succeeded"]}},
        "C": compose(json!("after"), json!({"Call": ["Succeeded"]}))
    });
    let h = harness(Some(addr), &[("w", actions)]).await;
    let engine = h.engine.clone();
    let running = tokio::spawn(async move { engine.run("w", json!({"n": 41})).await });
    let mut waited = 0;
    while service.calls.lock().expect("lock").get("gate/2").is_none() {
        assert!(waited < 600, "the run never reached the call");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    // The call is in flight: what came before it is in the history, finished.
    let run = &h.db.list_runs(&Default::default()).expect("runs")[0];
    let records = h.actions(run);
    assert_eq!(records["A"].status, Status::Succeeded);
    assert_eq!(records["B"].outputs, Some(json!(42)));
    assert_eq!(records["B"].attempts, 1);
    assert_eq!(
        h.db.attempts(&run.id, "B").expect("attempts").len(),
        1,
        "B's attempt is recorded with it"
    );
    assert_eq!(records["Call"].status, Status::Running);
    assert!(!records.contains_key("C"));
    running.abort();
    let _ = running.await;
}

#[tokio::test]
async fn a_run_whose_history_cannot_be_written_stops_unfinished_and_resumes_once_it_can() {
    // A service that says when a request arrived and answers only when told to.
    let arrived = Arc::new(tokio::sync::Notify::new());
    let answer = Arc::new(tokio::sync::Semaphore::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let router = Router::new().route(
        "/hold",
        get({
            let (arrived, answer, calls) = (arrived.clone(), answer.clone(), calls.clone());
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                arrived.notify_one();
                match tokio::time::timeout(Duration::from_secs(60), answer.acquire()).await {
                    Ok(Ok(permit)) => {
                        permit.forget();
                        "answered"
                    }
                    _ => "gave up",
                }
            }
        }),
    );
    let addr = serve(router).await;
    let actions = json!({
        "Call": {"type": "Http", "inputs": {"method": "GET", "uri": format!("http://{addr}/hold")}},
        "After": compose(json!("@body('Call')"), json!({"Call": ["Succeeded"]}))
    });
    let h = harness(Some(addr), &[("w", actions)]).await;
    let engine = h.engine.clone();
    let running = tokio::spawn(async move { engine.run("w", Value::Null).await });
    tokio::time::timeout(Duration::from_secs(30), arrived.notified())
        .await
        .expect("the call arrives");

    // Another process takes the history's write lock (a backup, the sqlite3 shell) and keeps
    // it past the busy timeout, while the call's answer comes back.
    let locker = rusqlite::Connection::open(h.dir.path().join(".cordon/history.db")).expect("open");
    locker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    answer.add_permits(1);
    let stopped = tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("the execution stops")
        .expect("task");
    let error = format!("{:#}", stopped.expect_err("the answer cannot be recorded"));
    assert!(
        error.contains("stopped unfinished") && error.contains("resumes"),
        "{error}"
    );
    // Not Failed: unfinished, as recorded before the lock.
    let runs = h.db.list_runs(&Default::default()).expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, Status::Running);

    // Once the lock is gone the lease is given up, and a sweep resumes the run to its end.
    locker.execute_batch("ROLLBACK").expect("release the lock");
    drop(locker);
    answer.add_permits(1);
    let mut resumed = Vec::new();
    for _ in 0..300 {
        resumed = h.engine.resume_interrupted().await.expect("resume");
        if !resumed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(resumed.len(), 1, "the run was never taken up again");
    let run = &resumed[0];
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    assert_eq!(h.actions(run)["After"].outputs, Some(json!("answered")));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the call whose answer was not recorded is made again (at least once)"
    );
}

#[tokio::test]
async fn a_wait_resumed_after_a_restart_waits_only_for_what_is_left() {
    let actions = json!({
        "Pause": {"type": "Wait", "inputs": {"interval": {"count": 10, "unit": "Minute"}}},
        "After": compose(json!("done"), json!({"Pause": ["Succeeded"]}))
    });
    let h = harness(None, &[("w", actions)]).await;

    // A first worker on the real clock starts the ten-minute wait and dies in it.
    let pause_running = || {
        h.db.list_runs(&Default::default())
            .expect("runs")
            .first()
            .is_some_and(|run| {
                h.db.actions(&run.id, false)
                    .expect("actions")
                    .iter()
                    .any(|a| a.name == "Pause" && a.status == Status::Running)
            })
    };
    first_worker_dies_when(&h, "w", pause_running).await;
    let pause_started = h.actions(&only_run(&h))["Pause"].started_at;

    // A second worker takes the run over nine minutes into the wait.
    let (second, clock) = second_worker(&h, pause_started + 9 * 60_000).await;
    let resumed = second.resume_interrupted().await.expect("resume");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].status, Status::Succeeded, "{:?}", resumed[0].error);
    assert_eq!(
        clock.sleeps(),
        vec![Duration::from_secs(60)],
        "one minute was left of the ten"
    );
    // The wait went on: one attempt, from its first start, not an interrupted one and another.
    let attempts = h.db.attempts(&resumed[0].id, "Pause").expect("attempts");
    let summary: Vec<(u32, Status, i64)> = attempts
        .iter()
        .map(|a| (a.attempt, a.status, a.started_at))
        .collect();
    assert_eq!(summary, vec![(1, Status::Succeeded, pause_started)]);
    assert_eq!(h.actions(&resumed[0])["Pause"].attempts, 1);
}

/// Starts `workflow` on a worker with the real clock, waits (at most 12 s) until `reached`
/// says the run got far enough, and stops that worker as if its process died.
async fn first_worker_dies_when(h: &Harness, workflow: &str, reached: impl Fn() -> bool) {
    let project = Project::open(h.dir.path()).expect("project");
    let first = Engine::open(
        &project,
        &runtime(),
        cordon_host::workflow::EngineOptions::new(h.db.clone()),
    )
    .await
    .expect("engine");
    let workflow = workflow.to_owned();
    let running = tokio::spawn(async move { first.run(&workflow, Value::Null).await });
    let mut waited = 0;
    while !reached() {
        assert!(waited < 600, "the run never got far enough");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    running.abort();
    let _ = running.await;
}

/// A second worker on a fake clock that starts at `now_ms`, past the first one's lease.
async fn second_worker(h: &Harness, now_ms: i64) -> (Engine, Arc<FakeClock>) {
    let project = Project::open(h.dir.path()).expect("project");
    let clock = Arc::new(FakeClock::starting_at(now_ms));
    let mut options = cordon_host::workflow::EngineOptions::new(h.db.clone());
    options.clock = clock.clone();
    options.lease_owner = "other-worker:1".to_owned();
    let engine = Engine::open(&project, &runtime(), options).await.expect("engine");
    (engine, clock)
}

fn only_run(h: &Harness) -> RunRecord {
    let runs = h.db.list_runs(&Default::default()).expect("runs");
    assert_eq!(runs.len(), 1);
    runs[0].clone()
}

#[tokio::test]
async fn a_retry_whose_delay_a_restart_cut_short_waits_out_the_rest_and_runs_once() {
    let service = Service::default();
    let addr = serve(service.router()).await;
    let retry = json!({"type": "fixed", "count": 3, "interval": "PT10M"});
    let h = harness(
        Some(addr),
        &[("w", json!({"Call": http(addr, "/fail/1/503", Some(retry))}))],
    )
    .await;

    // The first worker fails its first attempt and dies during the ten-minute delay.
    first_worker_dies_when(&h, "w", || {
        h.db.list_runs(&Default::default())
            .expect("runs")
            .first()
            .is_some_and(|run| !h.db.attempts(&run.id, "Call").expect("attempts").is_empty())
    })
    .await;
    let run = only_run(&h);
    let first = h.db.attempts(&run.id, "Call").expect("attempts")[0].clone();

    // A second worker takes over nine minutes into the delay.
    let (second, clock) = second_worker(&h, first.ended_at + 9 * 60_000).await;
    let resumed = second.resume_interrupted().await.expect("resume");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].status, Status::Succeeded, "{:?}", resumed[0].error);
    assert_eq!(
        clock.sleeps(),
        vec![Duration::from_secs(60)],
        "one minute was left of the delay"
    );
    let attempts = h.db.attempts(&run.id, "Call").expect("attempts");
    let summary: Vec<(u32, Status)> = attempts.iter().map(|a| (a.attempt, a.status)).collect();
    assert_eq!(
        summary,
        vec![(1, Status::Failed), (2, Status::Succeeded)],
        "the retry that never ran is not recorded as interrupted"
    );
    assert_eq!(attempts[1].started_at, first.ended_at + 10 * 60_000);
    assert_eq!(h.actions(&run)["Call"].attempts, 2);
    assert_eq!(service.calls.lock().expect("lock")["fail/1/503"], 2);
}

#[tokio::test]
async fn a_retry_interrupted_by_a_restart_is_recorded_from_its_own_start() {
    let service = Service::default();
    let addr = serve(service.router()).await;
    let retry = json!({"type": "fixed", "count": 3, "interval": "PT5S"});
    let h = harness(
        Some(addr),
        &[(
            "w",
            json!({"Call": http(addr, "/fail-hang-succeed", Some(retry))}),
        )],
    )
    .await;

    // The first worker's second attempt gets no answer; the worker dies in it.
    first_worker_dies_when(&h, "w", || {
        service
            .calls
            .lock()
            .expect("lock")
            .get("fail-hang-succeed")
            .is_some_and(|n| *n >= 2)
    })
    .await;
    let run = only_run(&h);
    let first = h.db.attempts(&run.id, "Call").expect("attempts")[0].clone();

    let resume_at = first.ended_at + 120_000;
    let (second, clock) = second_worker(&h, resume_at).await;
    let resumed = second.resume_interrupted().await.expect("resume");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].status, Status::Succeeded, "{:?}", resumed[0].error);
    assert_eq!(
        clock.sleeps(),
        Vec::<Duration>::new(),
        "an interrupted attempt is not a retry delay"
    );
    let attempts = h.db.attempts(&run.id, "Call").expect("attempts");
    let summary: Vec<(u32, Status, Option<&str>)> = attempts
        .iter()
        .map(|a| {
            let code = a.error.as_ref().and_then(|e| e["code"].as_str());
            (a.attempt, a.status, code)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, Status::Failed, Some("503")),
            (2, Status::Failed, Some("Interrupted")),
            (3, Status::Succeeded, None)
        ]
    );
    assert!(
        attempts[1].started_at >= first.ended_at + 5_000,
        "the interrupted attempt began after the delay, not with the action: {} against {}",
        attempts[1].started_at,
        first.ended_at
    );
    assert_eq!(attempts[2].started_at, resume_at);
    assert_eq!(service.calls.lock().expect("lock")["fail-hang-succeed"], 3);
}

#[tokio::test]
async fn an_action_timeout_counts_from_the_first_start_across_a_restart() {
    let service = Service::default();
    let addr = serve(service.router()).await;
    let mut call = http(addr, "/gate/2", Some(json!({"type": "none"})));
    call["limit"] = json!({"timeout": "PT10M"});
    let h = harness(
        Some(addr),
        &[(
            "w",
            json!({"Call": call, "After": compose(json!("after"), json!({"Call": ["TimedOut"]}))}),
        )],
    )
    .await;

    // The first worker's call gets no answer; the worker dies in it.
    first_worker_dies_when(&h, "w", || {
        service.calls.lock().expect("lock").contains_key("gate/2")
    })
    .await;
    let run = only_run(&h);
    let started_at = h.actions(&run)["Call"].started_at;

    // Taken over eleven minutes after the action started: its ten minutes are spent.
    let (second, _clock) = second_worker(&h, started_at + 11 * 60_000).await;
    let resumed = second.resume_interrupted().await.expect("resume");
    assert_eq!(resumed.len(), 1);
    assert_eq!(h.status(&resumed[0], "Call"), Status::TimedOut);
    assert_eq!(h.status(&resumed[0], "After"), Status::Succeeded);
    assert_eq!(
        service.calls.lock().expect("lock")["gate/2"],
        1,
        "an action out of time is not called again"
    );
}

/// A service whose `/held` calls each wait for their own permit (`release(n)` answers the
/// n-th call, counting from 1), and whose `/after` calls are counted.
#[derive(Clone, Default)]
struct HeldCalls {
    held: Arc<AtomicUsize>,
    after: Arc<AtomicUsize>,
    permits: Arc<Mutex<HashMap<usize, Arc<tokio::sync::Semaphore>>>>,
}

impl HeldCalls {
    fn permit(&self, n: usize) -> Arc<tokio::sync::Semaphore> {
        let mut permits = self.permits.lock().expect("lock");
        permits
            .entry(n)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(0)))
            .clone()
    }

    fn release(&self, n: usize) {
        self.permit(n).add_permits(1);
    }

    async fn wait_for_held(&self, n: usize) {
        let mut waited = 0;
        while self.held.load(Ordering::SeqCst) < n {
            assert!(waited < 600, "held call {n} never arrived");
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += 1;
        }
    }

    fn router(&self) -> Router {
        let (held, after) = (self.clone(), self.clone());
        Router::new()
            .route(
                "/held",
                get(move || async move {
                    let n = held.held.fetch_add(1, Ordering::SeqCst) + 1;
                    let permit = held.permit(n);
                    match tokio::time::timeout(Duration::from_secs(60), permit.acquire()).await {
                        Ok(Ok(_)) => format!("answer {n}"),
                        _ => "gave up".to_owned(),
                    }
                }),
            )
            .route(
                "/after",
                get(move || async move {
                    after.after.fetch_add(1, Ordering::SeqCst);
                    "after"
                }),
            )
    }
}

fn wall_clock_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970");
    i64::try_from(since_epoch.as_millis()).expect("milliseconds fit in i64")
}

fn held_then_after(addr: SocketAddr) -> Value {
    json!({
        "Call": {"type": "Http", "inputs": {"method": "GET", "uri": format!("http://{addr}/held")}},
        "After": {"type": "Http", "inputs": {"method": "GET", "uri": format!("http://{addr}/after")},
                  "runAfter": {"Call": ["Succeeded"]}}
    })
}

#[tokio::test]
async fn a_worker_whose_lease_lapsed_stops_at_its_next_write_and_the_claimer_runs_alone() {
    let service = HeldCalls::default();
    let addr = serve(service.router()).await;
    let h = harness(Some(addr), &[("w", held_then_after(addr))]).await;

    // Worker A (the real clock) starts the run; its call is held.
    let a = h.engine.clone();
    let a_run = tokio::spawn(async move { a.run("w", Value::Null).await });
    service.wait_for_held(1).await;
    let run = only_run(&h);

    // Worker B, whose clock is past A's lease (as if A had been paused that long), claims the
    // run and makes the call again; that one is held too.
    let (b, _clock) = second_worker(&h, wall_clock_ms() + 10 * 60_000).await;
    let b_run = tokio::spawn(async move { b.resume_interrupted().await });
    service.wait_for_held(2).await;

    // A's call comes back: recording it is refused, and A stops.
    service.release(1);
    let a_outcome = a_run.await.expect("worker A's task");
    let error = format!("{:#}", a_outcome.expect_err("A no longer holds the run"));
    assert!(
        error.contains("worker other-worker:1 holds its lease now"),
        "{error}"
    );

    // B finishes the run alone: the next action ran once, and the records are B's.
    service.release(2);
    let resumed = b_run.await.expect("worker B's task").expect("resume");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].status, Status::Succeeded, "{:?}", resumed[0].error);
    assert_eq!(
        service.after.load(Ordering::SeqCst),
        1,
        "the action after the call ran once"
    );
    assert_eq!(
        h.actions(&run)["Call"]
            .outputs
            .as_ref()
            .map(|o| o["body"].clone()),
        Some(json!("answer 2"))
    );
}

#[tokio::test]
async fn a_run_cancelled_by_another_server_stops_where_it_executes() {
    let service = HeldCalls::default();
    let addr = serve(service.router()).await;
    let h = harness(Some(addr), &[("w", held_then_after(addr))]).await;

    let engine = h.engine.clone();
    let running = tokio::spawn(async move { engine.run("w", Value::Null).await });
    service.wait_for_held(1).await;
    let run = only_run(&h);

    // Another server on the same history cancels the run (its management API writes this).
    h.db.cancel_run(&run.id, wall_clock_ms()).expect("cancel");
    service.release(1);
    let ended = running
        .await
        .expect("task")
        .expect("the run's end is its cancellation");
    assert_eq!(ended.status, Status::Cancelled);
    assert_eq!(
        service.after.load(Ordering::SeqCst),
        0,
        "nothing starts after the cancel"
    );
    let records = h.actions(&run);
    assert_eq!(
        records["Call"].status,
        Status::Succeeded,
        "what finished is still recorded"
    );
    assert!(!records.contains_key("After"));
}

#[tokio::test]
async fn the_worker_that_claims_a_parent_takes_over_its_unfinished_child() {
    let service = HeldCalls::default();
    let addr = serve(service.router()).await;
    let call_child =
        json!({"Child": {"type": "Workflow", "inputs": {"host": {"workflow": {"id": "child"}}, "body": {}}}});
    let h = harness(
        Some(addr),
        &[("parent", call_child), ("child", held_then_after(addr))],
    )
    .await;

    let a = h.engine.clone();
    let a_run = tokio::spawn(async move { a.run("parent", Value::Null).await });
    service.wait_for_held(1).await;
    let runs = h.db.list_runs(&Default::default()).expect("runs");
    let parent = runs
        .iter()
        .find(|r| r.workflow == "parent")
        .expect("parent run")
        .clone();
    let child = runs
        .iter()
        .find(|r| r.workflow == "child")
        .expect("child run")
        .clone();

    // The child's lease runs longer than the parent's (it was started after the parent's last
    // renewal), so the claim takes the parent alone.
    let file = rusqlite::Connection::open(h.db.location()).expect("open the history");
    file.execute(
        "UPDATE runs SET lease_expires = ?2 WHERE id = ?1",
        rusqlite::params![child.id, wall_clock_ms() + 60 * 60_000],
    )
    .expect("extend the child's lease");
    let (b, _clock) = second_worker(&h, wall_clock_ms() + 10 * 60_000).await;
    let b_run = tokio::spawn(async move { b.resume_interrupted().await });
    service.wait_for_held(2).await;

    service.release(1);
    let error = format!("{:#}", a_run.await.expect("task").expect_err("A lost the child"));
    assert!(
        error.contains("worker other-worker:1 holds its lease now"),
        "{error}"
    );
    service.release(2);
    let resumed = b_run.await.expect("task").expect("resume");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].id, parent.id);
    assert_eq!(resumed[0].status, Status::Succeeded, "{:?}", resumed[0].error);
    assert_eq!(h.db.run(&child.id).expect("child").status, Status::Succeeded);
    assert_eq!(service.after.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_workflow_action_that_times_out_cancels_its_child_run() {
    let service = HeldCalls::default();
    let addr = serve(service.router()).await;
    let call_child = json!({"Child": {"type": "Workflow", "limit": {"timeout": "PT0.5S"},
                                      "inputs": {"host": {"workflow": {"id": "child"}}, "body": {}}}});
    let h = harness(
        Some(addr),
        &[("parent", call_child), ("child", held_then_after(addr))],
    )
    .await;
    let parent = h.run("parent", Value::Null).await;
    assert_eq!(h.status(&parent, "Child"), Status::TimedOut);
    let child =
        h.db.list_runs(&Default::default())
            .expect("runs")
            .into_iter()
            .find(|r| r.workflow == "child")
            .expect("the child run");
    assert_eq!(
        child.status,
        Status::Cancelled,
        "no parent will finish it, so it does not stay Running"
    );
    // Its call, held until now, can no longer start what came after it.
    service.release(1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(service.after.load(Ordering::SeqCst), 0);
}

/// An order service that answers in XML, as SOAP services and many older APIs do.
const ORDERS_XML: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:o="urn:orders">
  <s:Body>
    <o:orders>
      <o:order id="A-1"><o:customer>Ada</o:customer><o:total>12.50</o:total></o:order>
      <o:order id="B-2"><o:customer>Bob</o:customer><o:total>30</o:total></o:order>
    </o:orders>
  </s:Body>
</s:Envelope>"#;

#[tokio::test]
async fn xml_from_a_service_is_queried_with_xpath_and_converted_to_json() {
    let router = Router::new().route(
        "/orders",
        get(|| async {
            (
                [("content-type", "application/soap+xml; charset=utf-8")],
                ORDERS_XML,
            )
        }),
    );
    let addr = serve(router).await;
    let after_get = json!({"Get": ["Succeeded"]});
    let actions = json!({
        "Get": http(addr, "/orders", None),
        "Total": compose(json!("@xpath(xml(body('Get')), 'sum(//o:order/o:total)')"), after_get.clone()),
        "Ids": compose(json!("@xpath(xml(body('Get')), '//o:order/@id')"), after_get.clone()),
        "First": compose(
            json!("@first(xpath(xml(body('Get')), '//*[local-name()=\"order\"]'))"),
            after_get.clone(),
        ),
        "Customers": {"type": "Select", "runAfter": after_get.clone(), "inputs": {
            "from": "@json(xml(body('Get')))['s:Envelope']['s:Body']['o:orders']['o:order']",
            "select": "@item()['o:customer']"}},
        "Request": compose(
            json!("@xml(json('{\"o:query\": {\"@xmlns:o\": \"urn:orders\", \"o:customer\": \"Ada\"}}'))"),
            json!({}),
        ),
        "Summary": compose(
            json!("@{outputs('Total')} from @{join(body('Customers'), ', ')}; asked @{outputs('Request')}"),
            json!({"Total": ["Succeeded"], "Customers": ["Succeeded"], "Request": ["Succeeded"]}),
        ),
        "Misspelt": compose(json!("@xpath(xml(body('Get')), '//x:order')"), after_get),
    });
    let h = harness(Some(addr), &[("w", actions)]).await;
    let run = h.run("w", Value::Null).await;
    let actions = h.actions(&run);
    let outputs = |name: &str| {
        actions[name]
            .outputs
            .clone()
            .unwrap_or_else(|| panic!("{name} has outputs"))
    };

    assert_eq!(outputs("Total"), json!(42.5));
    assert_eq!(outputs("Ids"), json!(["A-1", "B-2"]));
    // An element comes back as an XML value (what the history keeps) that reads as XML text,
    // carrying the namespace declaration its name needs.
    let first = outputs("First");
    assert_eq!(first["$content-type"], "application/xml;charset=utf-8");
    assert_eq!(
        cordon_host::expr::to_text(&first),
        r#"<o:order xmlns:o="urn:orders" id="A-1"><o:customer>Ada</o:customer><o:total>12.50</o:total></o:order>"#
    );
    assert_eq!(outputs("Customers")["body"], json!(["Ada", "Bob"]));
    assert_eq!(
        outputs("Summary"),
        json!(
            r#"42.5 from Ada, Bob; asked <o:query xmlns:o="urn:orders"><o:customer>Ada</o:customer></o:query>"#
        )
    );

    // A prefix the document does not declare fails that action with the reason; the run
    // records it and the rest of the run stands.
    assert_eq!(actions["Misspelt"].status, Status::Failed);
    let error = actions["Misspelt"].error.clone().expect("an error").to_string();
    assert!(
        error.contains("uses the prefix \\\"x\\\", which the document does not declare"),
        "{error}"
    );
    assert_eq!(run.status, Status::Failed);
    assert_eq!(actions["Summary"].status, Status::Succeeded);
}

#[tokio::test]
async fn binary_and_xml_bodies_pass_through_the_http_action_whole() {
    const IMAGE: &[u8] = &[0x89, b'P', b'N', b'G', 0x00, 0xff, 0xfe, 0x80];
    // What the upload endpoint received: (Content-Type, body), in order.
    type Uploads = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let received: Uploads = Arc::default();
    let router = Router::new()
        .route(
            "/image",
            get(|| async { ([("content-type", "image/png")], IMAGE) }),
        )
        .route(
            "/catalog",
            get(|| async {
                (
                    [("content-type", "text/xml")],
                    "<catalog><item sku='a'/><item sku='b'/></catalog>",
                )
            }),
        )
        .route(
            "/upload",
            axum::routing::post({
                let received = received.clone();
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    received.lock().expect("lock").push((content_type, body.to_vec()));
                    "stored"
                }
            }),
        );
    let addr = serve(router).await;
    let post = |body: &str, run_after: Value| {
        json!({"type": "Http", "runAfter": run_after,
               "inputs": {"method": "POST", "uri": format!("http://{addr}/upload"), "body": body}})
    };
    let actions = json!({
        "Image": http(addr, "/image", None),
        "Catalog": http(addr, "/catalog", None),
        "Skus": compose(json!("@xpath(body('Catalog'), '//item/@sku')"), json!({"Catalog": ["Succeeded"]})),
        "Forward": post("@body('Image')", json!({"Image": ["Succeeded"]})),
        "Order": post(
            "@xml(json('{\"order\": {\"sku\": \"a\"}}'))",
            json!({"Forward": ["Succeeded"]}),
        ),
    });
    let h = harness(Some(addr), &[("w", actions)]).await;
    let run = h.run("w", Value::Null).await;
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    let actions = h.actions(&run);

    // The image is content, not text with U+FFFD where its bytes were not UTF-8.
    let image = &actions["Image"].outputs.as_ref().expect("outputs")["body"];
    assert_eq!(image["$content-type"], "image/png");
    // An XML answer is XML that xpath() reads as it is.
    assert_eq!(actions["Skus"].outputs, Some(json!(["a", "b"])));
    // Content goes out as its bytes under its type.
    let received = received.lock().expect("lock").clone();
    assert_eq!(
        received,
        vec![
            ("image/png".to_owned(), IMAGE.to_vec()),
            (
                "application/xml;charset=utf-8".to_owned(),
                b"<order><sku>a</sku></order>".to_vec()
            ),
        ]
    );
}

#[tokio::test]
async fn basic_and_raw_authentication_are_sent_and_kept_out_of_the_history() {
    let addr = serve(cordon_tests::echo_router()).await;
    let request = |authentication: Value| {
        json!({"type": "Http", "inputs": {"method": "POST", "uri": format!("http://{addr}/echo"),
                                          "authentication": authentication}})
    };
    let h = harness(
        Some(addr),
        &[(
            "w",
            json!({
                "Basic": request(json!({"type": "Basic", "username": "svc", "password": "hunter2"})),
                "Raw": request(json!({"type": "Raw", "value": "Token abc123"}))
            }),
        )],
    )
    .await;
    let run = h.run("w", Value::Null).await;
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    let records = h.actions(&run);
    let sent = |name: &str| {
        records[name].outputs.as_ref().expect("outputs")["body"]["headers"]["authorization"].clone()
    };
    // base64("svc:hunter2")
    assert_eq!(sent("Basic"), "Basic c3ZjOmh1bnRlcjI=");
    assert_eq!(sent("Raw"), "Token abc123");
    for name in ["Basic", "Raw"] {
        let inputs = records[name].inputs.as_ref().expect("inputs").to_string();
        assert!(
            inputs.contains("not recorded") && !inputs.contains("hunter2") && !inputs.contains("abc123"),
            "{name}: {inputs}"
        );
    }
}

#[tokio::test]
async fn retention_deletes_finished_runs_past_the_period_and_keeps_unfinished_ones() {
    use cordon_host::workflow::clock::Clock as _;
    use cordon_host::workflow::retention;
    let h = harness(
        None,
        &[(
            "flow",
            json!({"Echo": compose(json!("@triggerBody()"), json!({}))}),
        )],
    )
    .await;
    let execute = |body: Value| {
        let engine = h.engine.clone();
        async move {
            let run = engine.accept("flow", json!({"body": body})).expect("accept");
            engine.execute(run).await.expect("execute")
        }
    };
    let old = execute(json!("old")).await;
    // Recorded, never executed: unfinished, however old it gets.
    let unfinished = h
        .engine
        .accept("flow", json!({"body": "waiting"}))
        .expect("accept");
    h.clock.sleep(Duration::from_secs(100 * 24 * 60 * 60)).await;
    let recent = execute(json!("recent")).await;

    let ninety_days = retention::period(90).expect("a period");
    let cutoff = h.clock.now_ms() - ninety_days.as_millis() as i64;
    assert_eq!(
        retention::delete_ended_before(h.db.as_ref(), cutoff).expect("delete"),
        1
    );
    assert!(h.db.run(&old.id).is_err(), "the old run is gone");
    assert!(
        h.db.actions(&old.id, true).expect("actions").is_empty(),
        "its actions too"
    );
    assert_eq!(h.db.run(&unfinished.id).expect("kept").ended_at, None);
    assert_eq!(h.db.run(&recent.id).expect("kept").status, Status::Succeeded);
    assert_eq!(h.actions(&recent).len(), 1);
    assert_eq!(
        retention::delete_ended_before(h.db.as_ref(), cutoff).expect("again"),
        0
    );
    assert_eq!(retention::period(0), None, "0 keeps every run");
}

#[tokio::test]
async fn http_actions_authenticate_with_the_secrets_of_the_projects_http_connection() {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("svc:pa55-word");
    let server = serve(cordon_tests::credentials_router(vec![
        format!("Basic {basic}"),
        "Bearer t0ken-9f2c".to_owned(),
    ]))
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let connections = json!({"http": {
        "parameterValues": {"password": "@appsetting('API_PASSWORD')", "token": "@appsetting('API_TOKEN')"},
        "grant": {"hosts": [format!("http://{server}")], "secrets": [{"name": "password"}, {"name": "token"}]}
    }});
    let uri = format!("http://{server}/private");
    write_project(
        dir.path(),
        &connections,
        &[(
            "w",
            json!({
                "Basic": {"type": "Http", "inputs": {"method": "GET", "uri": uri,
                    "authentication": {"type": "Basic", "username": "svc"}}},
                "Bearer": {"type": "Http", "inputs": {"method": "GET", "uri": uri,
                    "authentication": {"type": "Bearer"}}},
                // A setting the connection uses as a secret is not for expressions to read.
                "Peek": {"type": "Compose", "inputs": "@appsetting('API_PASSWORD')"}
            }),
        )],
    );
    std::fs::write(
        dir.path().join("local.settings.json"),
        json!({"Values": {"API_PASSWORD": "pa55-word", "API_TOKEN": "t0ken-9f2c"}}).to_string(),
    )
    .expect("local.settings.json");
    let (engine, db, _clock) = workflow_engine(dir.path()).await;
    let run = engine.run("w", json!({})).await.expect("run executes");
    let actions: HashMap<String, ActionRecord> = db
        .actions(&run.id, false)
        .expect("actions")
        .into_iter()
        .map(|a| (a.path.clone(), a))
        .collect();
    for name in ["Basic", "Bearer"] {
        let record = &actions[name];
        assert_eq!(record.status, Status::Succeeded, "{name}: {:?}", record.error);
        assert_eq!(
            record.outputs.as_ref().expect("outputs")["statusCode"],
            200,
            "{name}"
        );
    }
    assert_eq!(actions["Peek"].status, Status::Failed);
    let history = serde_json::to_string(&actions.values().collect::<Vec<_>>()).expect("json");
    for secret in ["pa55-word", &basic, "t0ken-9f2c"] {
        assert!(!history.contains(secret), "{secret} in the history: {history}");
    }

    // A secret given as text in the http connection is refused before any run, as for any
    // connection.
    let text = json!({"http": {"parameterValues": {"password": "pa55-word"},
        "grant": {"hosts": [format!("http://{server}")]}, "grants": {}}});
    std::fs::write(dir.path().join("connections.json"), text.to_string()).expect("connections.json");
    let project = Project::open(dir.path()).expect("project");
    let (connections, mut problems) = Connections::load(&project, &runtime(), None, None)
        .await
        .expect("load");
    problems.extend(project.problems.iter().cloned());
    problems.extend(validate::validate(&project, &connections));
    let said: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        said.iter().any(|p| p.contains("$.http.parameterValues")
            && p.contains("\"password\" is a secret of connector \"http\"")
            && p.contains("never as text")),
        "{said:?}"
    );
    assert!(
        said.iter()
            .any(|p| p.contains("$.http.grants") && p.contains("unknown key")),
        "{said:?}"
    );
}
