//! The grant engine against a real HTTP server on loopback, driven by a connector.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use cordon_host::egress::StaticLookup;
use cordon_host::{CallInfo, Connection, Limits, Runtime, RuntimeConfig};
use cordon_tests::{connect, echo_router, fetch, grant, hostile, outcome, runtime, runtime_config, serve};
use serde_json::json;

async fn setup(hosts: &[&str]) -> (Connection, SocketAddr) {
    let addr = serve(echo_router()).await;
    let runtime = runtime();
    let hosts: Vec<String> = hosts
        .iter()
        .map(|h| h.replace("PORT", &addr.port().to_string()))
        .collect();
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    (connect(&hostile(&runtime).await, grant(&hosts)), addr)
}

#[tokio::test]
async fn allows_a_granted_address() {
    let (connection, addr) = setup(&["http://127.0.0.1:PORT"]).await;
    let got = fetch(&connection, json!({"url": format!("http://{addr}/echo")})).await;
    assert_eq!(outcome(&got), "response", "{got}");
    assert_eq!(got["status"], 200);
}

#[tokio::test]
async fn denies_another_host_and_names_the_grant_to_add() {
    let (connection, addr) = setup(&["http://127.0.0.1:PORT"]).await;
    let got = fetch(
        &connection,
        json!({"url": format!("http://127.0.0.2:{}/echo", addr.port())}),
    )
    .await;
    assert_eq!(outcome(&got), "denied", "{got}");
    let message = got["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("grant \"http://127.0.0.2:{}\"", addr.port())),
        "{message}"
    );
}

#[tokio::test]
async fn denies_the_bare_domain_against_a_subdomain_grant() {
    let (connection, _) = setup(&["http://*.example.test:*"]).await;
    let got = fetch(&connection, json!({"url": "http://example.test/"})).await;
    assert_eq!(outcome(&got), "denied", "{got}");
}

#[tokio::test]
async fn refuses_userinfo_in_the_url() {
    let (connection, _) = setup(&["https://good:*", "https://evil:*"]).await;
    let got = fetch(&connection, json!({"url": "https://good@evil/"})).await;
    assert_eq!(outcome(&got), "invalid_request", "{got}");
    assert!(
        got["message"].as_str().unwrap_or_default().contains("user name"),
        "{got}"
    );
}

#[tokio::test]
async fn denies_an_undeclared_port() {
    let (connection, addr) = setup(&["http://127.0.0.1:PORT"]).await;
    let other = if addr.port() == 65535 { 1 } else { addr.port() + 1 };
    let got = fetch(&connection, json!({"url": format!("http://127.0.0.1:{other}/")})).await;
    assert_eq!(outcome(&got), "denied", "{got}");
}

#[tokio::test]
async fn denies_http_when_only_https_is_granted() {
    let (connection, addr) = setup(&["https://127.0.0.1:PORT"]).await;
    let got = fetch(&connection, json!({"url": format!("http://{addr}/echo")})).await;
    assert_eq!(outcome(&got), "denied", "{got}");
}

#[tokio::test]
async fn returns_a_redirect_to_a_disallowed_host_unfollowed() {
    let (connection, addr) = setup(&["http://127.0.0.1:PORT"]).await;
    let got = fetch(
        &connection,
        json!({"url": format!("http://{addr}/redirect?to=http://evil.example/steal")}),
    )
    .await;
    assert_eq!(outcome(&got), "response", "{got}");
    assert_eq!(got["status"], 302);
    assert_eq!(got["location"], "http://evil.example/steal");
}

#[tokio::test]
async fn denies_a_granted_name_that_resolves_to_loopback() {
    let (connection, addr) = setup(&["http://localhost:PORT"]).await;
    let got = fetch(
        &connection,
        json!({"url": format!("http://localhost:{}/echo", addr.port())}),
    )
    .await;
    assert_eq!(outcome(&got), "denied", "{got}");
    let message = got["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("resolves to") && message.contains("loopback"),
        "{message}"
    );
}

#[tokio::test]
async fn connects_to_a_name_only_through_addresses_the_grant_names() {
    let addr = serve(echo_router()).await;
    let loopback: IpAddr = "127.0.0.1".parse().expect("ip");
    let runtime = Runtime::new(RuntimeConfig {
        name_lookup: Arc::new(StaticLookup::default().with("api.test", &[loopback])),
        ..runtime_config()
    })
    .expect("runtime");
    let connector = hostile(&runtime).await;
    let url = json!({"url": format!("http://api.test:{}/echo", addr.port())});

    let name_only = connect(&connector, grant(&[&format!("http://api.test:{}", addr.port())]));
    assert_eq!(outcome(&fetch(&name_only, url.clone()).await), "denied");

    let with_address = connect(
        &connector,
        grant(&[
            &format!("http://api.test:{}", addr.port()),
            &format!("http://127.0.0.1:{}", addr.port()),
        ]),
    );
    let got = fetch(&with_address, url).await;
    assert_eq!(outcome(&got), "response", "{got}");
}

#[tokio::test]
async fn denies_loopback_written_as_mapped_ipv6_or_a_decimal_integer() {
    let (connection, addr) = setup(&["http://*:*"]).await;
    let port = addr.port();
    for url in [
        format!("http://[::ffff:127.0.0.1]:{port}/echo"),
        format!("http://2130706433:{port}/echo"),
        format!("http://0x7f.1:{port}/echo"),
        format!("http://127.0.0.1:{port}/echo"),
    ] {
        let got = fetch(&connection, json!({ "url": url })).await;
        assert_eq!(outcome(&got), "denied", "{url}: {got}");
    }
}

#[tokio::test]
async fn ignores_proxy_variables() {
    // A proxy at a dead port: if the client used it, the request would fail.
    #[allow(unsafe_code)]
    // SAFETY: the variables only ever point at a dead loopback port, and no test reads them.
    unsafe {
        for var in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            std::env::set_var(var, "http://127.0.0.1:9");
        }
    }
    let (connection, addr) = setup(&["http://127.0.0.1:PORT"]).await;
    let got = fetch(&connection, json!({"url": format!("http://{addr}/echo")})).await;
    assert_eq!(outcome(&got), "response", "{got}");
}

#[tokio::test]
async fn refuses_host_headers_hop_by_hop_headers_and_dangerous_methods() {
    let (connection, addr) = setup(&["http://127.0.0.1:PORT"]).await;
    let url = format!("http://{addr}/echo");
    for headers in [
        json!({"Host": "evil.example"}),
        json!({"Transfer-Encoding": "chunked"}),
        json!({"Proxy-Authorization": "x"}),
    ] {
        let got = fetch(&connection, json!({"url": url, "headers": headers})).await;
        assert_eq!(outcome(&got), "invalid_request", "{headers}: {got}");
    }
    for method in ["CONNECT", "TRACE"] {
        let got = fetch(&connection, json!({"url": url, "method": method})).await;
        assert_eq!(outcome(&got), "invalid_request", "{method}: {got}");
    }
    let injected = fetch(
        &connection,
        json!({"url": url, "headers": {"x-a": "1\r\nx-b: 2"}}),
    )
    .await;
    assert_eq!(outcome(&injected), "invalid_request", "{injected}");
}

#[tokio::test]
async fn caps_response_size_and_times_out_slow_responses() {
    let addr = serve(echo_router()).await;
    let mut limits = Limits::default();
    limits.http.response_body_bytes = 1000;
    let runtime = Runtime::new(RuntimeConfig {
        limits,
        ..runtime_config()
    })
    .expect("runtime");
    let connection = connect(
        &hostile(&runtime).await,
        grant(&[&format!("http://127.0.0.1:{}", addr.port())]),
    );
    let big = fetch(
        &connection,
        json!({"url": format!("http://{addr}/big?bytes=5000")}),
    )
    .await;
    assert_eq!(outcome(&big), "too_large", "{big}");
    let slow = fetch(
        &connection,
        json!({"url": format!("http://{addr}/slow"), "timeout_ms": 300}),
    )
    .await;
    assert_eq!(outcome(&slow), "timeout", "{slow}");
}

#[tokio::test]
async fn caps_requests_per_invocation() {
    let (connection, addr) = setup(&["http://127.0.0.1:PORT"]).await;
    let call = connection
        .invoke(
            "fetch_many",
            &json!({"request": {"url": format!("http://{addr}/echo")}, "times": 300}),
            &CallInfo::default(),
        )
        .await;
    let counts = call.result.expect("fetch_many");
    let cap = Limits::default().http.requests_per_invocation;
    assert_eq!(counts["response"], json!(cap));
    assert_eq!(counts["denied"], json!(300 - cap));
}
