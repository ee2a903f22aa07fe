//! The audit log: every policy refusal and every plaintext secret read, as `tracing` events
//! with target `cordon::audit`. Operators route that target wherever they keep audit trails.

use crate::grant::Denial;
use crate::ids::{ConnectionName, ConnectorId, SecretName};

/// The tracing target of audit events.
pub const TARGET: &str = "cordon::audit";

/// Records a denial. `asked` has already been redacted by the caller.
pub fn denied(connector: &ConnectorId, connection: &ConnectionName, denial: &Denial) {
    tracing::warn!(
        target: "cordon::audit",
        event = "denied",
        connector = %connector,
        connection = %connection,
        kind = denial.kind.as_str(),
        asked = %denial.asked,
        missing = %denial.missing,
        "connector request denied"
    );
}

/// Records that a connector read a secret's plaintext (allowed, but always worth knowing).
pub fn secret_revealed(connector: &ConnectorId, connection: &ConnectionName, secret: &SecretName) {
    tracing::info!(
        target: "cordon::audit",
        event = "secret_revealed",
        connector = %connector,
        connection = %connection,
        secret = %secret,
        "connector read a secret's plaintext"
    );
}

/// Records that an operator stored (or replaced) a secret in the encrypted store.
pub fn secret_stored(secret: &SecretName, key_id: &str, replaced: bool) {
    tracing::info!(
        target: "cordon::audit",
        event = "secret_stored",
        secret = %secret,
        key_id,
        replaced,
        "secret stored in the encrypted store"
    );
}

/// Records that an operator removed a secret from the encrypted store.
pub fn secret_removed(secret: &SecretName) {
    tracing::info!(
        target: "cordon::audit",
        event = "secret_removed",
        secret = %secret,
        "secret removed from the encrypted store"
    );
}

/// Records that a connection's file connector version became the approved one: at its first
/// install, as an upgrade that asked for nothing beyond the grant, or by an operator's
/// `cordon connector approve`.
pub fn connector_approved(connection: &str, connector: &ConnectorId, sha256: &str, how: &str) {
    tracing::info!(
        target: "cordon::audit",
        event = "connector_approved",
        connection,
        connector = %connector,
        sha256,
        how,
        "connector version approved"
    );
}

/// Records that a new connector file asks for more than the connection's grant, so the
/// approved version keeps running until an operator approves it.
pub fn connector_upgrade_pending(connection: &str, offered_sha256: &str, approved_sha256: &str, asks: &str) {
    tracing::warn!(
        target: "cordon::audit",
        event = "connector_upgrade_pending",
        connection,
        offered_sha256,
        approved_sha256,
        asks,
        "connector upgrade waits for approval (cordon connector approve); the approved version keeps running"
    );
}
