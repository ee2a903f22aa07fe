//! Integration tests: the host driven through its library API with real connectors built for
//! wasm32-wasip2 and real HTTP servers on loopback.

mod audit;
mod canary;
mod connectors;
mod egress_tricks;
mod examples;
mod grants;
mod hand_made;
mod http_async;
mod limits;
mod loading;
mod quotas;
mod secret_store;
mod secrets;
mod server;
mod spares;
mod tenants;
mod triggers;
mod upgrades;
mod webhooks;
mod workflows;
