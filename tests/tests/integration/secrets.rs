//! Secrets reach a server only when granted and bound, and never come back out.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use cordon_host::egress::StaticLookup;
use cordon_host::ids::SecretName;
use cordon_host::secrets::{SecretLocation, SecretMap};
use cordon_host::{CallInfo, ConnectorError, Grant, InvokeError, Runtime, RuntimeConfig, SecretGrant};
use cordon_tests::{connect_with, hostile, runtime, runtime_config, serve};
use serde_json::{Value, json};

const CANARY: &str = "canary-7f3a9c-do-not-leak";

/// A server that records the headers it receives and echoes them back.
async fn recording_server() -> (std::net::SocketAddr, Arc<Mutex<Vec<HeaderMap>>>) {
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let record = seen.clone();
    let router = Router::new().route(
        "/",
        get(move |headers: HeaderMap| {
            let record = record.clone();
            async move {
                let echoed = format!("{headers:?}");
                record.lock().expect("lock").push(headers);
                echoed
            }
        }),
    );
    (serve(router).await, seen)
}

fn secret_source(var: &str) -> Arc<SecretMap> {
    #[allow(unsafe_code)]
    // SAFETY: each test uses its own variable name; nothing else reads it concurrently.
    unsafe {
        std::env::set_var(var, CANARY);
    }
    let mut map = SecretMap::default();
    for name in ["token", "bound"] {
        map.insert(
            SecretName::new(name).expect("name"),
            SecretLocation::Env(var.to_owned()),
        );
    }
    Arc::new(map)
}

fn secret(name: &str, plaintext: bool) -> SecretGrant {
    SecretGrant {
        name: SecretName::new(name).expect("name"),
        hosts: Vec::new(),
        plaintext,
    }
}

fn hosts(list: &[String]) -> Vec<cordon_host::host_pattern::HostPattern> {
    list.iter().map(|h| h.parse().expect("pattern")).collect()
}

#[tokio::test]
async fn placeholder_is_filled_for_a_granted_secret_and_hidden_from_the_guest() {
    let (addr, seen) = recording_server().await;
    let runtime = runtime();
    let connection = connect_with(
        &hostile(&runtime).await,
        Grant {
            hosts: hosts(&[format!("http://127.0.0.1:{}", addr.port())]),
            secrets: vec![secret("token", false)],
        },
        secret_source("CORDON_TEST_SECRET_A"),
        Default::default(),
    );
    let call = connection
        .invoke(
            "fetch",
            &json!({"url": format!("http://{addr}/"), "headers": {"authorization": "Bearer {{secret:token}}"}}),
            &CallInfo::default(),
        )
        .await;
    let got = call.result.expect("fetch");
    assert_eq!(got["outcome"], "response", "{got}");
    let received = seen.lock().expect("lock")[0]["authorization"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(
        received,
        format!("Bearer {CANARY}"),
        "the server got the real value"
    );
    let body = got["body"].as_str().unwrap_or_default();
    assert!(
        !body.contains(CANARY),
        "the echoed value must not reach the guest: {body}"
    );
    assert!(body.contains("{{secret:token}}"), "{body}");
}

#[tokio::test]
async fn placeholder_for_an_ungranted_secret_is_denied_and_nothing_is_sent() {
    let (addr, seen) = recording_server().await;
    let runtime = runtime();
    let connection = connect_with(
        &hostile(&runtime).await,
        Grant {
            hosts: hosts(&[format!("http://127.0.0.1:{}", addr.port())]),
            secrets: vec![],
        },
        secret_source("CORDON_TEST_SECRET_B"),
        Default::default(),
    );
    for name in ["token", "undeclared"] {
        let header = format!("{{{{secret:{name}}}}}");
        let call = connection
            .invoke(
                "fetch",
                &json!({"url": format!("http://{addr}/"), "headers": {"x": header}}),
                &CallInfo::default(),
            )
            .await;
        let got = call.result.expect("fetch");
        assert_eq!(got["outcome"], "denied", "{name}: {got}");
    }
    assert!(seen.lock().expect("lock").is_empty(), "no request left the host");
}

#[tokio::test]
async fn a_base64_block_is_encoded_after_its_secrets_are_filled_and_hidden_from_the_guest() {
    use base64::Engine as _;
    let (addr, seen) = recording_server().await;
    let runtime = runtime();
    let connection = connect_with(
        &hostile(&runtime).await,
        Grant {
            hosts: hosts(&[format!("http://127.0.0.1:{}", addr.port())]),
            secrets: vec![secret("token", false)],
        },
        secret_source("CORDON_TEST_SECRET_F"),
        Default::default(),
    );
    let fetch = |header: &'static str| {
        let connection = connection.clone();
        async move {
            let input = json!({"url": format!("http://{addr}/"), "headers": {"authorization": header}});
            connection.invoke("fetch", &input, &CallInfo::default()).await
        }
    };
    let got = fetch("Basic {{base64:svc:{{secret:token}}}}")
        .await
        .result
        .expect("fetch");
    assert_eq!(got["outcome"], "response", "{got}");
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("svc:{CANARY}"));
    let received = seen.lock().expect("lock")[0]["authorization"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(
        received,
        format!("Basic {encoded}"),
        "the server got the credentials"
    );
    // The server echoed the header back; neither the secret nor its encoding reaches the guest.
    let body = got["body"].as_str().unwrap_or_default();
    assert!(!body.contains(&encoded) && !body.contains(CANARY), "{body}");
    assert!(body.contains("Basic {{secret:token}}"), "{body}");

    // A secret the grant does not give is denied inside a block as anywhere, and nothing is sent.
    let denied = fetch("Basic {{base64:svc:{{secret:undeclared}}}}")
        .await
        .result
        .expect("fetch");
    assert_eq!(denied["outcome"], "denied", "{denied}");
    assert_eq!(
        seen.lock().expect("lock").len(),
        1,
        "only the first request left the host"
    );
}

#[tokio::test]
async fn a_secret_goes_only_to_the_hosts_it_is_bound_to() {
    let (addr, seen) = recording_server().await;
    let loopback: IpAddr = "127.0.0.1".parse().expect("ip");
    let runtime = Runtime::new(RuntimeConfig {
        name_lookup: Arc::new(StaticLookup::default().with("other.test", &[loopback])),
        ..runtime_config()
    })
    .expect("runtime");
    let port = addr.port();
    let connection = connect_with(
        &hostile(&runtime).await,
        Grant {
            hosts: hosts(&[
                format!("http://127.0.0.1:{port}"),
                format!("http://other.test:{port}"),
            ]),
            secrets: vec![secret("bound", false)],
        },
        secret_source("CORDON_TEST_SECRET_C"),
        Default::default(),
    );
    let send = |url: String| {
        let connection = connection.clone();
        async move {
            connection
                .invoke(
                    "fetch",
                    &json!({"url": url, "headers": {"x": "{{secret:bound}}"}}),
                    &CallInfo::default(),
                )
                .await
                .result
                .expect("fetch")
        }
    };
    // The connector bound "bound" to http://127.0.0.1:*; other.test is reachable but not bound.
    let elsewhere = send(format!("http://other.test:{port}/")).await;
    assert_eq!(elsewhere["outcome"], "denied", "{elsewhere}");
    assert!(seen.lock().expect("lock").is_empty());
    let bound = send(format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(bound["outcome"], "response", "{bound}");
}

#[tokio::test]
async fn a_canary_never_appears_in_logs_errors_or_outputs() {
    let runtime = runtime();
    let connection = connect_with(
        &hostile(&runtime).await,
        Grant {
            hosts: vec![],
            secrets: vec![secret("token", true)],
        },
        secret_source("CORDON_TEST_SECRET_D"),
        Default::default(),
    );
    let call = connection
        .invoke(
            "leak",
            &json!({"url": "http://unbound.example/"}),
            &CallInfo::default(),
        )
        .await;
    let everything = format!("{:?} {:?}", call.result, call.log);
    assert!(!everything.contains(CANARY), "leaked: {everything}");
    match &call.result {
        Err(InvokeError::Connector(ConnectorError::Permanent { message })) => {
            assert!(message.contains("[REDACTED:token]"), "{message}")
        }
        other => panic!("expected the connector's error, got {other:?}"),
    }
    let logged: Vec<&str> = call.log.lines.iter().map(|l| l.message.as_str()).collect();
    assert!(
        logged.iter().any(|l| l.contains("[REDACTED:token]")),
        "{logged:?}"
    );
    assert_eq!(
        logged.len(),
        3,
        "log, stdout and stderr lines were all captured: {logged:?}"
    );
}

#[tokio::test]
async fn plaintext_needs_its_own_grant() {
    let runtime = runtime();
    let connection = connect_with(
        &hostile(&runtime).await,
        Grant {
            hosts: vec![],
            secrets: vec![secret("token", false)],
        },
        secret_source("CORDON_TEST_SECRET_E"),
        Default::default(),
    );
    let call = connection
        .invoke("leak", &json!({"url": "http://x.example/"}), &CallInfo::default())
        .await;
    match call.result {
        Err(InvokeError::Connector(ConnectorError::Unauthorized { message })) => {
            assert!(message.contains("plaintext reading is not granted"), "{message}")
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    let _: Value = json!(null);
}
