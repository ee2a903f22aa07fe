//! URL and DNS tricks against the egress check, each against real servers on loopback: the
//! host that is checked is the host that is contacted, whatever the URL's spelling; a name
//! that changes its answer cannot move a request; floods and endless responses stop at their
//! caps. After each case the next legitimate call still works.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::routing::{any, get};
use cordon_host::egress::{NameLookup, StaticLookup};
use cordon_host::{CallInfo, Connection, Limits, Runtime, RuntimeConfig};
use cordon_tests::{connect, echo_router, fetch, grant, hostile, outcome, runtime, runtime_config, serve};
use serde_json::{Value, json};

/// The next legitimate call on the same connection still answers.
async fn still_works(connection: &Connection) {
    let call = connection.invoke("ok", &json!(null), &CallInfo::default()).await;
    assert_eq!(call.result.expect("ok"), json!(true));
}

/// A server that counts requests and echoes the Host header and path it saw. It closes every
/// connection, so each request makes (and resolves for) a new one instead of reusing the last.
fn counting_router(count: Arc<AtomicUsize>) -> Router {
    Router::new().fallback(any(move |headers: HeaderMap, uri: axum::http::Uri| {
        let count = count.clone();
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            let host = headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let names: Vec<String> = headers.keys().map(|k| k.as_str().to_owned()).collect();
            (
                [("connection", "close")],
                axum::Json(json!({"host": host, "path": uri.path(), "headers": names})),
            )
        }
    }))
}

async fn serve_on(ip: &str, port: u16, router: Router) -> Option<SocketAddr> {
    let listener = tokio::net::TcpListener::bind((ip, port)).await.ok()?;
    let addr = listener.local_addr().ok()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Some(addr)
}

#[tokio::test]
async fn backslashes_and_control_characters_never_change_the_host_that_is_contacted() {
    let count = Arc::new(AtomicUsize::new(0));
    let addr = serve(counting_router(count.clone())).await;
    let port = addr.port();
    let runtime = runtime();
    let connection = connect(
        &hostile(&runtime).await,
        grant(&[&format!("http://127.0.0.1:{port}")]),
    );

    // Parsed the WHATWG way (the way the client sends it): a backslash is a slash, so the
    // host is what comes before it. Allowed ones reach 127.0.0.1; the others are refused.
    let cases = [
        (format!("http://127.0.0.1:{port}\\@evil.example/x"), "response"),
        (format!("http:\\\\127.0.0.1:{port}\\echo"), "response"),
        (format!("http://evil.example\\@127.0.0.1:{port}/"), "denied"),
        (format!("http://evil.example:{port}\\.127.0.0.1/"), "denied"),
        (format!("http://127.0.0.1\u{0}.evil:{port}/"), "invalid_request"),
        (format!("http://user@127.0.0.1:{port}/"), "invalid_request"),
    ];
    for (url, expected) in &cases {
        let before = count.load(Ordering::SeqCst);
        let got = fetch(&connection, json!({ "url": url })).await;
        assert_eq!(outcome(&got), *expected, "{url:?}: {got}");
        let reached = count.load(Ordering::SeqCst) - before;
        assert_eq!(
            reached,
            usize::from(*expected == "response"),
            "{url:?} reached the server {reached} times"
        );
        if *expected == "response" {
            let body: Value = serde_json::from_str(got["body"].as_str().expect("body")).expect("json");
            assert_eq!(body["host"], format!("127.0.0.1:{port}"), "{url:?}");
        }
    }

    // Tabs and line breaks are removed from URLs, never sent: no header can be smuggled in.
    let got = fetch(
        &connection,
        json!({"url": format!("http://127.0.0.1:{port}/a\r\nX-Injected: 1\r\n\tb")}),
    )
    .await;
    assert_eq!(outcome(&got), "response", "{got}");
    let body: Value = serde_json::from_str(got["body"].as_str().expect("body")).expect("json");
    assert!(
        !body["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .any(|h| h == "x-injected"),
        "{body}"
    );
    still_works(&connection).await;
}

#[tokio::test]
async fn a_trailing_dot_or_other_case_is_the_same_host_and_a_homoglyph_is_another() {
    let addr = serve(echo_router()).await;
    let port = addr.port();
    let loopback: IpAddr = "127.0.0.1".parse().expect("ip");
    let runtime = Runtime::new(RuntimeConfig {
        name_lookup: Arc::new(StaticLookup::default().with("api.test", &[loopback])),
        ..runtime_config()
    })
    .expect("runtime");
    let connection = connect(
        &hostile(&runtime).await,
        grant(&[
            &format!("http://api.test:{port}"),
            &format!("http://127.0.0.1:{port}"),
        ]),
    );
    let cases = [
        ("api.test", "response"),
        ("api.test.", "response"),
        ("API.Test", "response"),
        // Fullwidth letters fold to ASCII under IDNA: the same name, checked as such.
        ("\u{ff41}pi.test", "response"),
        // A Cyrillic 'а' is another name (xn--pi-7kc.test), which is not granted.
        ("\u{430}pi.test", "denied"),
        ("api.test..", "denied"),
        ("api.test.evil.example", "denied"),
    ];
    for (host, expected) in cases {
        let got = fetch(&connection, json!({"url": format!("http://{host}:{port}/echo")})).await;
        assert_eq!(outcome(&got), expected, "{host:?}: {got}");
        if host.starts_with('\u{430}') {
            let message = got["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("xn--"),
                "the denial names the real host: {message}"
            );
        }
    }
    still_works(&connection).await;
}

/// A resolver that answers `first` once and `then` ever after: the shape of DNS rebinding.
#[derive(Debug)]
struct Rebinding {
    calls: AtomicUsize,
    first: IpAddr,
    then: IpAddr,
}

impl NameLookup for Rebinding {
    fn lookup<'a>(
        &'a self,
        _host: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
        let answer = if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            self.first
        } else {
            self.then
        };
        Box::pin(async move { Ok(vec![answer]) })
    }
}

#[tokio::test]
async fn dns_rebinding_cannot_move_a_request_to_an_address_the_check_did_not_see() {
    // The granted server on 127.0.0.2 and an internal one on 127.0.0.1, on the same port.
    let granted_hits = Arc::new(AtomicUsize::new(0));
    let internal_hits = Arc::new(AtomicUsize::new(0));
    let mut servers = None;
    for _ in 0..20 {
        let Some(granted) = serve_on("127.0.0.2", 0, counting_router(granted_hits.clone())).await else {
            continue;
        };
        if let Some(internal) = serve_on(
            "127.0.0.1",
            granted.port(),
            counting_router(internal_hits.clone()),
        )
        .await
        {
            servers = Some((granted, internal));
            break;
        }
    }
    let (granted, _internal) = servers.expect("two loopback servers on one port");
    let port = granted.port();
    let runtime = Runtime::new(RuntimeConfig {
        name_lookup: Arc::new(Rebinding {
            calls: AtomicUsize::new(0),
            first: "127.0.0.2".parse().expect("ip"),
            then: "127.0.0.1".parse().expect("ip"),
        }),
        ..runtime_config()
    })
    .expect("runtime");
    let connection = connect(
        &hostile(&runtime).await,
        grant(&[
            &format!("http://rebind.test:{port}"),
            &format!("http://127.0.0.2:{port}"),
        ]),
    );
    let call = connection
        .invoke(
            "fetch_many",
            &json!({"request": {"url": format!("http://rebind.test:{port}/")}, "times": 20}),
            &CallInfo::default(),
        )
        .await;
    let counts = call.result.expect("fetch_many");
    assert_eq!(counts["response"], json!(1), "{counts}");
    assert_eq!(counts["denied"], json!(19), "{counts}");
    assert_eq!(granted_hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        internal_hits.load(Ordering::SeqCst),
        0,
        "a request reached the unchecked address"
    );
    still_works(&connection).await;
}

#[tokio::test]
async fn ten_thousand_requests_in_one_call_stop_at_the_cap() {
    let count = Arc::new(AtomicUsize::new(0));
    let addr = serve(counting_router(count.clone())).await;
    let runtime = runtime();
    let connection = connect(
        &hostile(&runtime).await,
        grant(&[&format!("http://127.0.0.1:{}", addr.port())]),
    );
    let call = connection
        .invoke(
            "fetch_many",
            &json!({"request": {"url": format!("http://{addr}/")}, "times": 10_000}),
            &CallInfo::default(),
        )
        .await;
    let counts = call.result.expect("fetch_many");
    let cap = Limits::default().http.requests_per_invocation;
    assert_eq!(counts["response"], json!(cap), "{counts}");
    assert_eq!(counts["denied"], json!(10_000 - cap), "{counts}");
    assert_eq!(count.load(Ordering::SeqCst), cap as usize);
    still_works(&connection).await;
}

#[tokio::test]
async fn endless_and_dripping_responses_stop_at_the_size_cap_and_the_timeout() {
    let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
    let router = Router::new()
        .route(
            "/endless",
            get(move || {
                let chunk = chunk.clone();
                async move {
                    Body::from_stream(futures_util::stream::repeat_with(move || {
                        Ok::<_, std::convert::Infallible>(chunk.clone())
                    }))
                }
            }),
        )
        .route(
            "/drip",
            get(|| async {
                Body::from_stream(futures_util::stream::unfold((), |()| async {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Some((Ok::<_, std::convert::Infallible>(Bytes::from_static(b"x")), ()))
                }))
            }),
        );
    let addr = serve(router).await;
    let runtime = runtime();
    let connection = connect(
        &hostile(&runtime).await,
        grant(&[&format!("http://127.0.0.1:{}", addr.port())]),
    );
    let endless = fetch(&connection, json!({"url": format!("http://{addr}/endless")})).await;
    assert_eq!(outcome(&endless), "too_large", "{endless}");
    let drip = fetch(
        &connection,
        json!({"url": format!("http://{addr}/drip"), "timeout_ms": 300}),
    )
    .await;
    assert_eq!(outcome(&drip), "timeout", "{drip}");
    still_works(&connection).await;
}
