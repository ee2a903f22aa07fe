//! Every denial is an audit event with the connector, the connection, what was asked and
//! what grant was missing.

use std::io::Write;
use std::sync::{Arc, Mutex};

use cordon_host::CallInfo;
use cordon_tests::{connect, grant, hostile, runtime};
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_denied_request_is_an_audit_event() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter("cordon::audit=info")
        .with_writer(move || writer.clone())
        .finish();
    // A current-thread runtime keeps every host call on this thread, under this subscriber.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let runtime = runtime();
            let connection = connect(&hostile(&runtime).await, grant(&[]));
            let call = connection
                .invoke(
                    "fetch",
                    &json!({"url": "https://evil.example/x"}),
                    &CallInfo::default(),
                )
                .await;
            assert_eq!(call.result.expect("fetch")["outcome"], "denied");
        })
    });
    let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
    let event: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|e: &serde_json::Value| e["target"] == "cordon::audit")
        .unwrap_or_else(|| panic!("no audit event in {text}"));
    let fields = &event["fields"];
    assert_eq!(fields["event"], "denied");
    assert_eq!(fields["connector"], "hostile");
    assert_eq!(fields["connection"], "test");
    assert_eq!(fields["kind"], "host");
    assert_eq!(fields["asked"], "https://evil.example:443");
    assert!(
        fields["missing"]
            .as_str()
            .unwrap_or_default()
            .contains("not granted"),
        "{fields}"
    );
}
