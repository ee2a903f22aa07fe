//! A tenant's quotas on outbound traffic, shared by all its connections: bytes per minute and
//! requests in flight, against real servers on loopback. Each case checks the host's answer
//! and that the next legitimate call still works.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use cordon_host::egress_quota::EgressQuotas;
use cordon_host::{CallInfo, ConnectorError, InvokeError, Runtime, RuntimeConfig};
use cordon_tests::{connect, echo_router, fetch, grant, hostile, outcome, runtime_config, serve};
use serde_json::json;

fn runtime_with(egress_quotas: EgressQuotas) -> Runtime {
    Runtime::new(RuntimeConfig {
        egress_quotas,
        ..runtime_config()
    })
    .expect("runtime")
}

#[tokio::test]
async fn past_its_egress_bytes_a_tenant_is_refused_and_another_is_not() {
    let addr = serve(echo_router()).await;
    let big = json!({"url": format!("http://{addr}/big?bytes=800")});
    let limited = runtime_with(EgressQuotas {
        bytes_per_minute: Some(1000),
        ..EgressQuotas::default()
    });
    let connection = connect(&hostile(&limited).await, grant(&["http://127.0.0.1:*"]));
    // 800 bytes, then 800 more while 200 of the minute's burst are left: both are read.
    for _ in 0..2 {
        let got = fetch(&connection, big.clone()).await;
        assert_eq!(outcome(&got), "response", "{got}");
    }
    // Now 600 bytes over: the next request is refused before it is sent.
    let refused = fetch(&connection, big.clone()).await;
    assert_eq!(outcome(&refused), "denied", "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("egressBytesPerMinute"), "{message}");
    // Calls that do not send go on; so does another tenant's traffic.
    let ok = connection.invoke("ok", &json!(null), &CallInfo::default()).await;
    assert_eq!(ok.result.expect("the next call works"), json!(true));
    let other = runtime_with(EgressQuotas::default());
    let other_connection = connect(&hostile(&other).await, grant(&["http://127.0.0.1:*"]));
    assert_eq!(outcome(&fetch(&other_connection, big).await), "response");
}

/// A server whose `/hold` answers only after a while, counting how many requests it holds at
/// once.
fn holding_server(held: Arc<AtomicUsize>, most: Arc<AtomicUsize>) -> Router {
    Router::new().route(
        "/hold",
        get(move || {
            let (held, most) = (held.clone(), most.clone());
            async move {
                let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(150)).await;
                held.fetch_sub(1, Ordering::SeqCst);
                "held"
            }
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_in_flight_quota_wait_their_turn_instead_of_failing() {
    let (held, most) = (Arc::default(), Arc::new(AtomicUsize::new(0)));
    let addr = serve(holding_server(held, most.clone())).await;
    let runtime = runtime_with(EgressQuotas {
        requests_in_flight: Some(2),
        ..EgressQuotas::default()
    });
    let connector = hostile(&runtime).await;
    let connections: Vec<_> = (0..3)
        .map(|_| connect(&connector, grant(&["http://127.0.0.1:*"])))
        .collect();
    // Three connections of one tenant, three requests each, all at once: nine requests, at
    // most two at the server at any moment, and every one answered.
    let input = json!({"request": {"url": format!("http://{addr}/hold")}, "times": 3});
    let calls = connections.iter().map(|connection| {
        let input = input.clone();
        async move {
            connection
                .invoke("fetch_many", &input, &CallInfo::default())
                .await
                .result
        }
    });
    for result in futures_util::future::join_all(calls).await {
        assert_eq!(result.expect("call"), json!({"response": 3}));
    }
    assert_eq!(most.load(Ordering::SeqCst), 2, "requests in flight at once");
}

#[tokio::test]
async fn a_call_that_fails_after_a_quota_refusal_is_rate_limited_with_retry_after() {
    let addr = serve(echo_router()).await;
    let runtime = runtime_with(EgressQuotas {
        bytes_per_minute: Some(1000),
        ..EgressQuotas::default()
    });
    // The mailer connector turns any failed request into a transient error of its own.
    let mailer = runtime
        .load_file(&cordon_tests::fixture("mailer"))
        .await
        .expect("mailer loads");
    let connection = connect(&mailer, grant(&["http://127.0.0.1:*"]));
    let send = json!({"url": format!("http://{addr}/big?bytes=800")});
    for _ in 0..2 {
        let call = connection.invoke("send", &send, &CallInfo::default()).await;
        assert_eq!(call.result.expect("under the quota")["status"], 200);
    }
    let call = connection.invoke("send", &send, &CallInfo::default()).await;
    match call.result {
        Err(InvokeError::Connector(ConnectorError::RateLimited { message, retry_after })) => {
            let retry_after = retry_after.expect("the quota knows when it has room");
            assert!(
                retry_after > Duration::from_secs(1) && retry_after <= Duration::from_secs(60),
                "{retry_after:?}"
            );
            assert!(message.contains("egressBytesPerMinute"), "{message}");
        }
        other => panic!("expected rate limited, got {other:?}"),
    }
}
