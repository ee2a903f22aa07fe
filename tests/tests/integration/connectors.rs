//! The shipped connectors, end to end.

use std::sync::Arc;

use cordon_host::ids::SecretName;
use cordon_host::secrets::{SecretLocation, SecretMap};
use cordon_host::{CallInfo, ConnectorError, Grant, InvokeError, SecretGrant};
use cordon_tests::{
    FAKE_GITHUB_TOKEN, FakeGithub, builtin, connect, connect_with, credentials_router, echo_router, grant,
    runtime, serve,
};
use serde_json::{Map, json};

#[tokio::test]
async fn json_transform_parses_picks_and_sums() {
    let runtime = runtime();
    let connector = runtime
        .load_bytes(builtin("json-transform"), "json-transform")
        .await
        .expect("load");
    let connection = connect(&connector, Grant::default());
    let call = CallInfo::default();
    let rows = connection
        .invoke(
            "parse_csv",
            &json!({"text": "team,amount\na,1.5\nb,2\na,3"}),
            &call,
        )
        .await
        .result
        .expect("parse");
    assert_eq!(rows[0], json!({"team": "a", "amount": 1.5}));
    let sums = connection
        .invoke(
            "sum_by",
            &json!({"items": rows, "group_by": "team", "sum": "amount"}),
            &call,
        )
        .await
        .result
        .expect("sum");
    assert_eq!(
        sums,
        json!([{"key": "a", "count": 2, "total": 4.5}, {"key": "b", "count": 1, "total": 2.0}])
    );
    let picked = connection
        .invoke(
            "pick",
            &json!({"value": {"a": 1, "b": 2}, "fields": ["b"]}),
            &call,
        )
        .await
        .result
        .expect("pick");
    assert_eq!(picked, json!({"b": 2}));
    let bad = connection
        .invoke("parse_csv", &json!({"text": "a,b\n1"}), &call)
        .await;
    assert!(
        matches!(&bad.result, Err(InvokeError::Connector(ConnectorError::InvalidInput { message })) if message.contains("line 2")),
        "{:?}",
        bad.result
    );
}

fn token_secrets(var: &str, value: &str) -> Arc<SecretMap> {
    #[allow(unsafe_code)]
    // SAFETY: each test uses its own variable name; nothing else reads it concurrently.
    unsafe {
        std::env::set_var(var, value);
    }
    let mut map = SecretMap::default();
    map.insert(
        SecretName::new("token").expect("name"),
        SecretLocation::Env(var.to_owned()),
    );
    Arc::new(map)
}

fn token_grant(hosts: &[String]) -> Grant {
    Grant {
        hosts: hosts.iter().map(|h| h.parse().expect("pattern")).collect(),
        secrets: vec![SecretGrant {
            name: SecretName::new("token").expect("name"),
            hosts: Vec::new(),
            plaintext: false,
        }],
    }
}

#[tokio::test]
async fn http_connector_sends_a_request_with_bearer_auth_by_placeholder() {
    let addr = serve(echo_router()).await;
    let runtime = runtime();
    let connector = runtime.load_bytes(builtin("http"), "http").await.expect("load");
    let connection = connect_with(
        &connector,
        token_grant(&[format!("http://127.0.0.1:{}", addr.port())]),
        token_secrets("CORDON_TEST_HTTP_TOKEN", "http-secret-value"),
        Map::new(),
    );
    let out = connection
        .invoke(
            "request",
            &json!({
                "method": "POST",
                "uri": format!("http://{addr}/echo"),
                "queries": {"q": "a b"},
                "body": {"hello": "world"},
                "authentication": {"type": "Bearer"}
            }),
            &CallInfo::default(),
        )
        .await
        .result
        .expect("request");
    assert_eq!(out["statusCode"], 200);
    assert_eq!(out["body"]["method"], "POST");
    assert_eq!(out["body"]["body"], r#"{"hello":"world"}"#);
    // The server got the token; the connector saw only the placeholder in the echo.
    assert_eq!(out["body"]["headers"]["authorization"], "Bearer {{secret:token}}");

    let denied = connection
        .invoke(
            "request",
            &json!({"method": "GET", "uri": "https://example.com/"}),
            &CallInfo::default(),
        )
        .await;
    assert!(
        matches!(&denied.result, Err(InvokeError::Connector(ConnectorError::Permanent { message })) if message.contains("denied")),
        "{:?}",
        denied.result
    );
}

#[tokio::test]
async fn http_connector_sends_basic_auth_with_the_password_from_the_connections_secret() {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("svc:pa55-word");
    let addr = serve(credentials_router(vec![format!("Basic {basic}")])).await;
    let runtime = runtime();
    let connector = runtime.load_bytes(builtin("http"), "http").await.expect("load");
    #[allow(unsafe_code)]
    // SAFETY: this test's own variable name; nothing else reads it concurrently.
    unsafe {
        std::env::set_var("CORDON_TEST_HTTP_PASSWORD", "pa55-word");
    }
    let mut secrets = SecretMap::default();
    secrets.insert(
        SecretName::new("password").expect("name"),
        SecretLocation::Env("CORDON_TEST_HTTP_PASSWORD".to_owned()),
    );
    let grant = |secret: Option<&str>| Grant {
        hosts: vec![
            format!("http://127.0.0.1:{}", addr.port())
                .parse()
                .expect("pattern"),
        ],
        secrets: secret
            .map(|name| SecretGrant {
                name: SecretName::new(name).expect("name"),
                hosts: Vec::new(),
                plaintext: false,
            })
            .into_iter()
            .collect(),
    };
    let request = json!({
        "method": "GET",
        "uri": format!("http://{addr}/private"),
        "authentication": {"type": "Basic", "username": "svc"}
    });

    let connection = connect_with(
        &connector,
        grant(Some("password")),
        Arc::new(secrets.clone()),
        Map::new(),
    );
    let out = connection
        .invoke("request", &request, &CallInfo::default())
        .await
        .result
        .expect("request");
    assert_eq!(out["statusCode"], 200, "{out}");
    // The service echoed the header; the connector got it redacted.
    assert_eq!(out["body"]["authorization"], "Basic {{secret:password}}");

    // A password written in the input is still Logic Apps' inline form, sent as it is.
    let mut inline = request.clone();
    inline["authentication"]["password"] = json!("wrong");
    let refused = connection.invoke("request", &inline, &CallInfo::default()).await;
    assert!(
        matches!(&refused.result, Err(InvokeError::Connector(ConnectorError::Unauthorized { message })) if message.starts_with("HTTP 401")),
        "{:?}",
        refused.result
    );

    // Without the grant of the `password` secret, the call is denied and says which.
    let ungranted = connect_with(&connector, grant(None), Arc::new(secrets), Map::new());
    let denied = ungranted.invoke("request", &request, &CallInfo::default()).await;
    assert!(
        matches!(&denied.result, Err(InvokeError::Connector(ConnectorError::Unauthorized { message })) if message.contains("password")),
        "{:?}",
        denied.result
    );
}

#[tokio::test]
async fn github_lists_creates_and_polls_new_issues() {
    let fake = FakeGithub::default();
    fake.add("first");
    let addr = serve(fake.router()).await;
    let runtime = runtime();
    let connector = runtime
        .load_bytes(builtin("github"), "github")
        .await
        .expect("load");
    let mut parameters = Map::new();
    parameters.insert("base_url".into(), json!(format!("http://{addr}")));
    let connection = connect_with(
        &connector,
        token_grant(&[format!("http://127.0.0.1:{}", addr.port())]),
        token_secrets("CORDON_TEST_GITHUB_TOKEN", FAKE_GITHUB_TOKEN),
        parameters.clone(),
    );
    let repo = json!({"owner": "acme", "repo": "widgets"});

    let first_poll = connection
        .poll("new_issue", &repo, None, &CallInfo::default())
        .await
        .result
        .expect("poll");
    assert!(
        first_poll.items.is_empty(),
        "the first poll only records where it is"
    );
    assert_eq!(first_poll.state, json!({"last_number": 1}));

    let call = CallInfo {
        idempotency_key: "run-1/open_ticket".into(),
        attempt: 1,
    };
    let created = connection
        .invoke(
            "create_issue",
            &json!({"owner": "acme", "repo": "widgets", "title": "broken"}),
            &call,
        )
        .await
        .result
        .expect("create");
    assert_eq!(created["number"], 2);
    assert_eq!(
        fake.seen_keys.lock().expect("lock").as_slice(),
        ["run-1/open_ticket"]
    );

    let listed = connection
        .invoke(
            "list_issues",
            &json!({"owner": "acme", "repo": "widgets"}),
            &CallInfo::default(),
        )
        .await
        .result
        .expect("list");
    assert_eq!(listed.as_array().map(Vec::len), Some(2));

    let second_poll = connection
        .poll("new_issue", &repo, Some(&first_poll.state), &CallInfo::default())
        .await
        .result
        .expect("poll");
    assert_eq!(second_poll.items.len(), 1);
    assert_eq!(second_poll.items[0]["title"], "broken");
    assert_eq!(second_poll.state, json!({"last_number": 2}));

    // Without the token grant, GitHub answers 401 and the connector reports unauthorized.
    let ungranted = connect_with(
        &connector,
        grant(&[&format!("http://127.0.0.1:{}", addr.port())]),
        token_secrets("CORDON_TEST_GITHUB_TOKEN2", FAKE_GITHUB_TOKEN),
        parameters,
    );
    let refused = ungranted.invoke("list_issues", &repo, &CallInfo::default()).await;
    assert!(
        matches!(
            &refused.result,
            Err(InvokeError::Connector(ConnectorError::Unauthorized { .. }))
        ),
        "{:?}",
        refused.result
    );
}
