//! Every denial is an audit event with the connector, the connection, what was asked and
//! what grant was missing.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use cordon_host::ids::ConnectionName;
use cordon_host::secrets::NoSecrets;
use cordon_host::{CallInfo, ConnectionConfig};
use cordon_tests::{grant, hostile, runtime};
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

/// The process-wide capture buffer. A scoped subscriber (`with_default`) is not enough here:
/// the tests in this binary run on parallel threads, and a thread without the subscriber can
/// register the audit callsite first and race the cached interest. A global subscriber sees
/// every thread; the test then picks out its own events by connection name.
fn captured_audit_log() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter("cordon::audit=info")
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("only this test sets a subscriber");
        captured
    })
}

#[tokio::test]
async fn a_denied_request_is_an_audit_event() {
    let captured = captured_audit_log();
    let runtime = runtime();
    let connection = hostile(&runtime)
        .await
        .connect(ConnectionConfig {
            name: ConnectionName::new("audit-test").expect("name"),
            parameters: Default::default(),
            grant: grant(&[]),
            secrets: Arc::new(NoSecrets),
        })
        .expect("connect");
    let call = connection
        .invoke(
            "fetch",
            &json!({"url": "https://evil.example/x"}),
            &CallInfo::default(),
        )
        .await;
    assert_eq!(call.result.expect("fetch")["outcome"], "denied");

    let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
    let event: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|e: &serde_json::Value| {
            e["target"] == "cordon::audit" && e["fields"]["connection"] == "audit-test"
        })
        .unwrap_or_else(|| panic!("no audit event in {text}"));
    let fields = &event["fields"];
    assert_eq!(fields["event"], "denied");
    assert_eq!(fields["connector"], "hostile");
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
