//! What `cordon serve`'s listener counts about its connections, for `/metrics`: how close the
//! server is to `--max-connections`, and how often a client was cut off for being slower
//! than `--client-timeout`. These belong to the process, not to a project, so a tenants
//! server shows them on the operator's root `/metrics`, not on a tenant's.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug)]
pub struct ConnectionMetrics {
    registry: Registry,
    pub(super) open: Gauge,
    pub(super) accepted: Counter,
    pub(super) limit_reached: Counter,
    pub(super) clients_timed_out: Counter,
}

impl Default for ConnectionMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cordon_server");
        let (open, accepted, limit_reached, clients_timed_out) = (
            Gauge::default(),
            Counter::default(),
            Counter::default(),
            Counter::default(),
        );
        registry.register("connections_open", "Connections open now", open.clone());
        registry.register("connections_accepted", "Connections accepted", accepted.clone());
        registry.register(
            "connection_limit_reached",
            "Times every connection the server may hold (--max-connections) was open, so new \
             ones waited in the listen backlog",
            limit_reached.clone(),
        );
        registry.register(
            "clients_timed_out",
            "Connections closed because the client sent no complete request head within \
             --client-timeout (idle keep-alive connections included) or left its answer unread \
             that long, and requests answered 408 because their body took longer",
            clients_timed_out.clone(),
        );
        ConnectionMetrics {
            registry,
            open,
            accepted,
            limit_reached,
            clients_timed_out,
        }
    }
}

impl ConnectionMetrics {
    /// `exposition` (an OpenMetrics text, such as a project's metrics) with these metrics
    /// added before its end.
    pub fn appended_to(&self, exposition: &str) -> String {
        const END: &str = "# EOF\n";
        let mut own = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut own, &self.registry);
        let before_end = exposition.strip_suffix(END).unwrap_or(exposition);
        format!("{before_end}{}{END}", own.strip_suffix(END).unwrap_or(&own))
    }
}
