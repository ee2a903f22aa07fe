//! Run concurrency per workflow: `runtimeConfiguration.concurrency.runs` slots, and up to
//! `maximumWaitingRuns` accepted runs waiting for one, in the order they came.
//!
//! A run is counted from the moment it is accepted (so the waiting limit can refuse a request
//! before anything is recorded) until its execution ends. Waiting runs are durable: they are
//! recorded with status `Waiting` and a restarted server queues them again in start order.
//! Workflows without a limit pass straight through.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::db::Status;

use super::definition::{RunConcurrency, Workflow};

/// The limits of every workflow of an engine.
#[derive(Debug, Default)]
pub struct Admission {
    gates: HashMap<String, Arc<Gate>>,
}

#[derive(Debug)]
struct Gate {
    limit: RunConcurrency,
    slots: Arc<Semaphore>,
    counted: Mutex<Counted>,
}

/// Runs accepted and not yet ended, and which of them were counted at acceptance.
#[derive(Debug, Default)]
struct Counted {
    outstanding: usize,
    accepted: HashSet<String>,
}

/// The workflow has as many runs waiting as its `maximumWaitingRuns` allows.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "workflow {workflow:?} has {running} runs in progress and {waiting} waiting, its limit (runtimeConfiguration.concurrency); try again later"
)]
pub struct Busy {
    pub workflow: String,
    pub running: usize,
    pub waiting: usize,
}

/// A run's hold on its workflow's limit, from the start of its execution to its end.
#[derive(Debug)]
pub struct Slot {
    gate: Option<Arc<Gate>>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(gate) = &self.gate {
            gate.lock().outstanding -= 1;
        }
    }
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counted> {
        // Only counters live here; a panic elsewhere cannot leave them half-written.
        self.counted.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Admission {
    pub fn new<'a>(workflows: impl IntoIterator<Item = &'a Workflow>) -> Admission {
        let gates = workflows
            .into_iter()
            .filter_map(|w| {
                let limit = w.triggers.iter().find_map(|t| t.concurrency)?;
                Some((
                    w.name.clone(),
                    Arc::new(Gate {
                        limit,
                        slots: Arc::new(Semaphore::new(limit.runs)),
                        counted: Mutex::default(),
                    }),
                ))
            })
            .collect();
        Admission { gates }
    }

    /// Counts a run about to be recorded and says which status to record it with. With
    /// `refuse_when_full`, a workflow whose waiting list is full refuses it.
    pub fn reserve(&self, workflow: &str, run_id: &str, refuse_when_full: bool) -> Result<Status, Busy> {
        let Some(gate) = self.gates.get(workflow) else {
            return Ok(Status::Running);
        };
        let mut counted = gate.lock();
        let limit = gate.limit;
        if refuse_when_full && counted.outstanding >= limit.runs + limit.maximum_waiting_runs {
            return Err(Busy {
                workflow: workflow.to_owned(),
                running: limit.runs,
                waiting: counted.outstanding - limit.runs,
            });
        }
        counted.outstanding += 1;
        counted.accepted.insert(run_id.to_owned());
        Ok(if counted.outstanding > limit.runs {
            Status::Waiting
        } else {
            Status::Running
        })
    }

    /// Gives back a reservation whose run could not be recorded.
    pub fn cancel_reservation(&self, workflow: &str, run_id: &str) {
        if let Some(gate) = self.gates.get(workflow) {
            let mut counted = gate.lock();
            if counted.accepted.remove(run_id) {
                counted.outstanding -= 1;
            }
        }
    }

    /// Whether a new run of `workflow` would be refused now.
    pub fn is_full(&self, workflow: &str) -> bool {
        self.gates
            .get(workflow)
            .is_some_and(|gate| gate.lock().outstanding >= gate.limit.runs + gate.limit.maximum_waiting_runs)
    }

    /// Waits, in arrival order, for a slot to run `run_id` in. A run that was not reserved
    /// (one resumed after a restart) is counted here.
    pub async fn enter(&self, workflow: &str, run_id: &str) -> Slot {
        let Some(gate) = self.gates.get(workflow) else {
            return Slot {
                gate: None,
                _permit: None,
            };
        };
        {
            let mut counted = gate.lock();
            if !counted.accepted.remove(run_id) {
                counted.outstanding += 1;
            }
        }
        // Counted before waiting, so the Slot's drop balances it even if this is cancelled.
        let mut slot = Slot {
            gate: Some(gate.clone()),
            _permit: None,
        };
        // The semaphore is never closed, so acquiring only fails if it were.
        slot._permit = gate.slots.clone().acquire_owned().await.ok();
        slot
    }
}
