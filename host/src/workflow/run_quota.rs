//! A tenant's quota of runs per minute (`tenant.json` `runsPerMinute`).
//!
//! A run started from outside (a request trigger, a resubmission) takes one unit or is
//! refused with [`RunQuotaExceeded`], which the server answers with 429 and `Retry-After`,
//! so callers and Logic Apps-style retry policies back off. The scheduler does not fire a
//! recurrence or a poll while the quota has no room: the occurrence folds into the next
//! firing (as a missed occurrence) and a poll's items stay in their source, so nothing is
//! lost; what it fires is charged afterwards, even past the quota, so a poll that split into
//! many runs delays the next ones. Child workflow runs are part of their parent's run and
//! are not counted.
//!
//! A tenant that was quiet may start a whole minute's runs at once; after that, one every
//! `60 s / runsPerMinute`.

use std::time::{Duration, Instant};

use crate::rate::Rate;

#[derive(Debug)]
pub struct RunQuota {
    per_minute: u32,
    runs: Rate,
}

/// A run refused because the tenant started its quota of runs this minute.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "this tenant may start {per_minute} runs per minute (its quota runsPerMinute) and has; try again in {} s",
    retry_after.as_secs().max(1)
)]
pub struct RunQuotaExceeded {
    pub per_minute: u32,
    pub retry_after: Duration,
}

impl RunQuota {
    pub fn per_minute(per_minute: u32) -> RunQuota {
        let runs = f64::from(per_minute.max(1));
        RunQuota {
            per_minute,
            runs: Rate::per(runs, Duration::from_secs(60), runs),
        }
    }

    /// Takes one run, or says how long until there is room.
    pub fn take(&self) -> Result<(), RunQuotaExceeded> {
        self.runs
            .try_take(Instant::now(), 1)
            .map_err(|retry_after| RunQuotaExceeded {
                per_minute: self.per_minute,
                retry_after,
            })
    }

    /// How long until the quota has room for a run; `None` when it has room now.
    pub fn wait(&self) -> Option<Duration> {
        self.runs.try_take(Instant::now(), 0).err()
    }

    /// Counts runs already started, even past the quota.
    pub fn charge(&self, runs: usize) {
        self.runs.charge(Instant::now(), runs as u64);
    }
}
