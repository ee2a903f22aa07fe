//! How long the run history keeps a finished run.
//!
//! A server that keeps every run grows its history without end: disk, backups, and listings
//! by a finished status (which walk the runs by start) all grow with it. Logic Apps keeps a
//! run 90 days by default, and so does `cordon serve` (`--retention-days`; 0 keeps every run).
//! A finished run older than that is deleted with its actions, attempts and webhook rows;
//! an unfinished run is never deleted, however old. SQLite reuses the freed pages, so the
//! file stops growing rather than shrinking (`VACUUM` shrinks it, offline).
//!
//! Deletion goes in batches of [`BATCH`] runs, one short write transaction each, so runs
//! executing meanwhile wait for the history at most one batch's time. Measured on
//! 2026-12-03: a history of 100,000 finished quickstart runs (16 action rows each, 750 MiB)
//! was emptied by `cordon runs prune` in 1.7 s, about 9 ms a batch, at 21 MiB resident.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::{Db, DbError};

use super::Engine;

/// Logic Apps' default run retention.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

/// Runs deleted per write transaction.
pub const BATCH: usize = 500;

/// How often a server deletes what has expired since the last sweep.
const SWEEP_EVERY: Duration = Duration::from_secs(60 * 60);

/// The retention period of `days` days, or `None` for 0 (keep every run).
pub fn period(days: u32) -> Option<Duration> {
    (days > 0).then(|| Duration::from_secs(u64::from(days) * 24 * 60 * 60))
}

/// Deletes every finished run that ended before `ended_before` (milliseconds since the Unix
/// epoch), a batch at a time; returns how many.
pub fn delete_ended_before(db: &dyn Db, ended_before: i64) -> Result<usize, DbError> {
    let mut deleted = 0;
    loop {
        let batch = db.delete_runs_ended_before(ended_before, BATCH)?;
        deleted += batch;
        if batch < BATCH {
            return Ok(deleted);
        }
    }
}

/// Deletes expired runs of `engine`'s history at start and then every hour, until `stop`.
pub async fn keep(engine: Engine, retention: Duration, tenant: Option<String>, stop: CancellationToken) {
    let db: Arc<dyn Db> = engine.db().clone();
    let clock = engine.shared().clock.clone();
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    loop {
        let cutoff = clock.now_ms().saturating_sub(retention_ms);
        let db = db.clone();
        match tokio::task::spawn_blocking(move || delete_ended_before(db.as_ref(), cutoff)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(deleted)) => tracing::info!(
                deleted,
                tenant,
                retention_days = retention.as_secs() / 86_400,
                "deleted finished runs past the retention period"
            ),
            Ok(Err(e)) => tracing::error!(error = %e, tenant, "cannot delete expired runs"),
            Err(e) => tracing::error!(error = %e, tenant, "the retention sweep stopped"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}
