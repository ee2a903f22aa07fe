//! Spare instances: fresh instances made before the calls that will use them, and used stores
//! dropped after their calls returned, both on a thread of the runtime's own.
//!
//! Every call gets a store and instance that no call used before (DESIGN.md). Making that
//! instance and dropping it afterwards is about two thirds of an isolated call (BENCHMARKS.md),
//! and neither has to happen while the caller waits. A spare is instantiated with no grant and
//! no network; the call that takes it gives it the connection's grant, secrets and deadline
//! (`Runtime::adopt`), makes its one call, and hands the store back here to be dropped.
//! Isolation is the same as instantiating on the caller's path: one instance, one call.
//!
//! The work is moved, not removed: it runs on another core when one is free, and the thread
//! runs at a lower priority so that it takes a core only when calls leave one. When no spare
//! is ready (a burst, a connector's first call, spares turned off, a machine too busy to run
//! the thread), the call instantiates on its own path as it would without this module, so a
//! slow or stuck spare thread only costs speed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use wasmtime::Store;

use crate::bindings::{Plugin, PluginPre};
use crate::runtime::{Runtime, RuntimeInner};
use crate::sandbox::SandboxState;

/// The most spares one connector keeps ready. Four lets a caller take two before the thread
/// is woken to make more, so the wake-up is paid once every two calls, not on every call.
const PER_CONNECTOR: usize = 4;

/// Used stores that may wait to be dropped. A call that finds the queue full drops its store
/// itself. Pool slots are reserved for these on top of the runtime's concurrency.
pub(crate) const USED_QUEUE: usize = 16;

/// The thread is woken once this many used stores wait, if nothing else woke it.
const USED_WAKE: usize = USED_QUEUE / 2;

/// How long used stores below `USED_WAKE` may wait for the thread when no call comes to wake
/// it: they hold pool slots and memory meanwhile.
const USED_LINGER: Duration = Duration::from_millis(10);

/// A fresh store and the instance in it, made ahead of the call that will use it.
pub(crate) struct Spare {
    pub(crate) store: Store<SandboxState>,
    pub(crate) plugin: Plugin,
}

/// The spares of one connector, shared by every clone of its `Connector`.
pub(crate) struct SpareQueue {
    ready: Mutex<Vec<Spare>>,
    /// Spares dropped with the connector give their place in the budget back.
    worker: Arc<SpareWorker>,
    metrics: Arc<crate::metrics::Metrics>,
    /// A refill of this queue is waiting at the thread.
    refill_queued: AtomicBool,
    /// Making a spare failed (its start function trapped, ran out of time or memory): calls of
    /// this connector instantiate on their own path from now on, where the caller sees why.
    disabled: AtomicBool,
}

impl SpareQueue {
    pub(crate) fn new(worker: Arc<SpareWorker>, metrics: Arc<crate::metrics::Metrics>) -> Self {
        SpareQueue {
            ready: Mutex::default(),
            worker,
            metrics,
            refill_queued: AtomicBool::new(false),
            disabled: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Spare>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for SpareQueue {
    fn drop(&mut self) {
        let left = self.lock().len();
        self.worker.ready_total.fetch_sub(left, Ordering::Relaxed);
        self.metrics.spares_ready_changed(-(left as i64));
    }
}

/// What the thread has to do.
#[derive(Default)]
struct Work {
    refills: Vec<(Arc<SpareQueue>, PluginPre<SandboxState>)>,
    used: Vec<Store<SandboxState>>,
    /// How the thread waits on the condition variable; notifying is only worth a system call
    /// when it waits at all.
    sleep: Sleep,
}

/// What the thread is doing, as far as a caller who queues work needs to know.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Sleep {
    /// Working; it looks at the queue again before it sleeps.
    #[default]
    Awake,
    /// Lingering after work: it wakes by itself within `USED_LINGER` and drops what was
    /// queued meanwhile, so a used store need not wake it.
    Short,
    /// Idle for longer than `USED_LINGER`: only a notification wakes it in time.
    Long,
}

/// The runtime's spare-instance thread and the work queued for it.
pub(crate) struct SpareWorker {
    /// Spares wanted over all connectors; 0 turns spares off (used stores are still dropped
    /// on the thread).
    budget: usize,
    ready_total: AtomicUsize,
    work: Mutex<Work>,
    wake: Condvar,
    started: std::sync::Once,
}

impl SpareWorker {
    pub(crate) fn new(budget: usize) -> Self {
        SpareWorker {
            budget,
            ready_total: AtomicUsize::new(0),
            work: Mutex::default(),
            wake: Condvar::new(),
            started: std::sync::Once::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Work> {
        self.work.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn target(&self) -> usize {
        PER_CONNECTOR.min(self.budget)
    }

    /// Takes a ready spare of `queue`'s connector, if there is one, and asks the thread for
    /// more when the queue runs low.
    pub(crate) fn take(
        self: &Arc<Self>,
        runtime: &Runtime,
        queue: &Arc<SpareQueue>,
        pre: &PluginPre<SandboxState>,
    ) -> Option<Spare> {
        if self.budget == 0 || queue.disabled.load(Ordering::Relaxed) {
            return None;
        }
        let (spare, left) = {
            let mut ready = queue.lock();
            let spare = ready.pop();
            (spare, ready.len())
        };
        if spare.is_some() {
            self.ready_total.fetch_sub(1, Ordering::Relaxed);
            runtime.metrics().spares_ready_changed(-1);
            runtime.metrics().call_on_spare();
        }
        if left <= self.target() / 2 && !queue.refill_queued.swap(true, Ordering::AcqRel) {
            let mut work = self.lock();
            work.refills.push((queue.clone(), pre.clone()));
            self.notify(runtime, work);
        }
        spare
    }

    /// Hands a used store over to be dropped off the caller's path.
    pub(crate) fn dispose(self: &Arc<Self>, runtime: &Runtime, store: Store<SandboxState>) {
        let mut work = self.lock();
        if work.used.len() >= USED_QUEUE {
            drop(work);
            drop(store);
            return;
        }
        work.used.push(store);
        // While calls keep coming, used stores ride along with the refills' wake-ups and the
        // linger after them; waking the thread for each would cost a system call and a
        // context switch per call on a machine whose cores the calls need.
        if work.used.len() >= USED_WAKE || work.sleep == Sleep::Long || !self.started.is_completed() {
            self.notify(runtime, work);
        }
    }

    fn notify(self: &Arc<Self>, runtime: &Runtime, work: MutexGuard<'_, Work>) {
        let sleeping = work.sleep != Sleep::Awake;
        drop(work);
        self.started
            .call_once(|| spawn(self.clone(), Arc::downgrade(&runtime.inner)));
        if sleeping {
            self.wake.notify_one();
        }
    }

    /// Waits for work; `None` when the runtime is gone.
    fn next(&self, runtime: &Weak<RuntimeInner>) -> Option<Work> {
        let mut work = self.lock();
        // Right after work, more calls are likely: linger first, and sleep long only once a
        // whole linger passed with nothing queued.
        let mut lingered_idle = false;
        loop {
            if !work.refills.is_empty() || work.used.len() >= USED_WAKE {
                break;
            }
            if runtime.strong_count() == 0 {
                return None;
            }
            // Used stores below the wake-up mark are dropped after a short wait; with nothing
            // queued for a while, the thread sleeps until a call wakes it, and looks every
            // second whether its runtime is still there.
            let (sleep, timeout) = if lingered_idle && work.used.is_empty() {
                (Sleep::Long, Duration::from_secs(1))
            } else {
                (Sleep::Short, USED_LINGER)
            };
            work.sleep = sleep;
            let (guard, waited) = self
                .wake
                .wait_timeout(work, timeout)
                .unwrap_or_else(|p| p.into_inner());
            work = guard;
            work.sleep = Sleep::Awake;
            if waited.timed_out() {
                if !work.used.is_empty() {
                    break;
                }
                lingered_idle = true;
            }
        }
        Some(std::mem::take(&mut *work))
    }
}

fn spawn(worker: Arc<SpareWorker>, runtime: Weak<RuntimeInner>) {
    let spawned = std::thread::Builder::new()
        .name("cordon-spares".into())
        .spawn(move || run(&worker, &runtime));
    if let Err(e) = spawned {
        // Calls still work without the thread: they instantiate on their own path, and
        // `dispose` drops stores itself once the queue is full.
        tracing::warn!("cannot start the thread that prepares spare instances: {e}");
    }
}

/// How much lower than the runtime's other threads the spare thread runs (a nice increment).
/// Spares are background work: on a machine whose cores the calls, their HTTP exchanges and
/// the tokio workers already keep busy, a spare thread at the same priority took its share of
/// a core from them and showed up as latency (a fresh instance's small HTTP request 1.47–1.56×
/// native reqwest; at +10, 1.32×; at +19 no better, BENCHMARKS.md). At +10 it still gets about
/// a tenth of a contended core, so a lock it holds (its queues, wasmtime's pool) is released
/// within a scheduler slice; when it gets nothing, calls instantiate on their own path.
const NICE_INCREMENT: i32 = 10;

/// Lowers the calling thread's scheduling priority by `NICE_INCREMENT`. On Linux, `nice`
/// applies to the calling thread only, not to the process.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::nice(NICE_INCREMENT) {
        // Only speed depends on it.
        tracing::debug!("cannot lower the spare thread's priority: {e}");
    }
}

/// The thread: holds the worker, not the runtime, so a runtime dropped by its users ends it.
fn run(worker: &SpareWorker, runtime: &Weak<RuntimeInner>) {
    lower_priority();
    // Instantiation is async (epoch yields, the CPU share's waits): a small executor of the
    // thread's own drives it.
    let executor = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(executor) => executor,
        Err(e) => {
            tracing::warn!("cannot start the executor that prepares spare instances: {e}");
            return;
        }
    };
    while let Some(work) = worker.next(runtime) {
        drop(work.used);
        if work.refills.is_empty() {
            continue;
        }
        let Some(runtime) = runtime.upgrade().map(|inner| Runtime { inner }) else {
            return;
        };
        for (queue, pre) in work.refills {
            // Cleared before filling, not after: a call that takes spares once the queue is
            // full but before the flag is cleared would see the flag set and ask for nothing,
            // and with every spare taken that way the connector's next call found none (seen
            // with the thread preempted at that point, on one core). A call that takes one
            // while this refill runs queues another, which finds the queue full or fills it.
            queue.refill_queued.store(false, Ordering::Release);
            executor.block_on(runtime.in_tenant(refill(worker, &runtime, &queue, &pre)));
        }
    }
}

async fn refill(worker: &SpareWorker, runtime: &Runtime, queue: &SpareQueue, pre: &PluginPre<SandboxState>) {
    while queue.lock().len() < worker.target() && !queue.disabled.load(Ordering::Relaxed) {
        // The budget is over all connectors: claim a place in it before making the spare.
        let claimed = worker
            .ready_total
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < worker.budget).then_some(n + 1)
            });
        if claimed.is_err() {
            return;
        }
        // Stores used meanwhile hold pool slots and memory: drop them before making more.
        let used = std::mem::take(&mut worker.lock().used);
        drop(used);
        match runtime.spare_instance(pre).await {
            Ok(spare) => {
                queue.lock().push(spare);
                runtime.metrics().spares_ready_changed(1);
            }
            Err(reason) => {
                worker.ready_total.fetch_sub(1, Ordering::Relaxed);
                queue.disabled.store(true, Ordering::Relaxed);
                tracing::debug!(
                    "a spare instance could not be made ({reason}); this connector's calls \
                     instantiate on their own path"
                );
                return;
            }
        }
    }
}
