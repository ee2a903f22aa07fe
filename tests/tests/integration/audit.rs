//! Every denial is an audit event with the connector, the connection, what was asked and
//! what grant was missing.

use std::sync::Arc;

use cordon_host::ids::ConnectionName;
use cordon_host::secrets::NoSecrets;
use cordon_host::{CallInfo, ConnectionConfig};
use cordon_tests::{captured_log, grant, hostile, runtime};
use serde_json::json;

#[tokio::test]
async fn a_denied_request_is_an_audit_event() {
    let captured = captured_log();
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

    let text = captured.text();
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
