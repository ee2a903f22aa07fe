//! Prometheus metrics of a runtime and the engines on it, served by `cordon serve` at
//! `/metrics` in the text exposition format.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `cordon_runs_total` | workflow, status | runs that ended |
//! | `cordon_runs_in_flight` | | runs executing or waiting for a slot in this process |
//! | `cordon_action_duration_seconds` | workflow, type, status | action executions (histogram) |
//! | `cordon_connector_invocations_total` | connector, call, outcome | invocations and polls |
//! | `cordon_denials_total` | connector, kind | requests a grant refused |
//! | `cordon_live_instances` | | connector instances alive now |
//! | `cordon_spare_instances_ready` | | instances made ahead of calls, not taken yet |
//! | `cordon_calls_on_spare_instances_total` | | calls that found a spare instance ready |
//!
//! Label values come from names the operator wrote (workflows, connectors) and fixed sets
//! (statuses, denial kinds), never from request data, so the series stay bounded.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    workflow: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    workflow: String,
    r#type: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InvocationLabels {
    connector: String,
    call: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenialLabels {
    connector: String,
    kind: String,
}

type HistogramMaker = fn() -> Histogram;

fn action_histogram() -> Histogram {
    // 0.5 ms to about 2 minutes, four times wider each bucket.
    Histogram::new(exponential_buckets(0.0005, 4.0, 10))
}

/// Every metric cordon keeps, with the registry that renders them.
pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    runs_in_flight: Gauge<i64, AtomicI64>,
    actions: Family<ActionLabels, Histogram, HistogramMaker>,
    invocations: Family<InvocationLabels, Counter>,
    denials: Family<DenialLabels, Counter>,
    live_instances: Gauge<i64, AtomicI64>,
    spares_ready: Gauge<i64, AtomicI64>,
    calls_on_spares: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cordon");
        let runs = Family::<RunLabels, Counter>::default();
        let runs_in_flight = Gauge::<i64, AtomicI64>::default();
        let actions =
            Family::<ActionLabels, Histogram, HistogramMaker>::new_with_constructor(action_histogram);
        let invocations = Family::<InvocationLabels, Counter>::default();
        let denials = Family::<DenialLabels, Counter>::default();
        let live_instances = Gauge::<i64, AtomicI64>::default();
        let spares_ready = Gauge::<i64, AtomicI64>::default();
        let calls_on_spares = Counter::default();
        registry.register("runs", "Runs that ended, by workflow and status", runs.clone());
        registry.register(
            "runs_in_flight",
            "Runs executing or waiting for a slot in this process",
            runs_in_flight.clone(),
        );
        registry.register(
            "action_duration_seconds",
            "How long action executions took, by workflow, action type and status",
            actions.clone(),
        );
        registry.register(
            "connector_invocations",
            "Connector invocations and polls, by connector, call and outcome",
            invocations.clone(),
        );
        registry.register(
            "denials",
            "Connector requests a grant refused, by connector and kind",
            denials.clone(),
        );
        registry.register(
            "live_instances",
            "Connector instances alive now",
            live_instances.clone(),
        );
        registry.register(
            "spare_instances_ready",
            "Instances made ahead of calls and not taken yet",
            spares_ready.clone(),
        );
        registry.register(
            "calls_on_spare_instances",
            "Calls that found an instance made ahead of them",
            calls_on_spares.clone(),
        );
        Metrics {
            registry,
            runs,
            runs_in_flight,
            actions,
            invocations,
            denials,
            live_instances,
            spares_ready,
            calls_on_spares,
        }
    }
}

impl Metrics {
    pub fn run_finished(&self, workflow: &str, status: &str) {
        self.runs
            .get_or_create(&RunLabels {
                workflow: workflow.to_owned(),
                status: status.to_owned(),
            })
            .inc();
    }

    pub fn set_runs_in_flight(&self, count: usize) {
        self.runs_in_flight.set(count as i64);
    }

    pub fn action_finished(&self, workflow: &str, action_type: &str, status: &str, seconds: f64) {
        self.actions
            .get_or_create(&ActionLabels {
                workflow: workflow.to_owned(),
                r#type: action_type.to_owned(),
                status: status.to_owned(),
            })
            .observe(seconds);
    }

    /// `call` is `invoke` or `poll`; `outcome` is `ok` or the kind of error.
    pub fn invocation(&self, connector: &str, call: &str, outcome: &str) {
        self.invocations
            .get_or_create(&InvocationLabels {
                connector: connector.to_owned(),
                call: call.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn denial(&self, connector: &str, kind: &str) {
        self.denials
            .get_or_create(&DenialLabels {
                connector: connector.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Counts a connector instance until the guard drops.
    pub fn instance(&self) -> LiveInstance {
        self.live_instances.inc();
        LiveInstance {
            gauge: self.live_instances.clone(),
        }
    }

    /// A spare instance was made (`+1`) or taken by a call (`-1`).
    pub(crate) fn spares_ready_changed(&self, by: i64) {
        self.spares_ready.inc_by(by);
    }

    pub(crate) fn call_on_spare(&self) {
        self.calls_on_spares.inc();
    }

    /// Instances made ahead of calls and not taken yet.
    pub fn spare_instances_ready(&self) -> i64 {
        self.spares_ready.get()
    }

    /// Calls that found an instance made ahead of them.
    pub fn calls_on_spare_instances(&self) -> u64 {
        self.calls_on_spares.get()
    }

    /// Connector instances alive now.
    pub fn live_instances(&self) -> i64 {
        self.live_instances.get()
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One live connector instance, for [`Metrics::instance`].
#[derive(Debug)]
pub struct LiveInstance {
    gauge: Gauge<i64, AtomicI64>,
}

impl Drop for LiveInstance {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
