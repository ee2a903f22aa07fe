//! The caps every invocation runs under. Each default says which attack it stops.

use std::time::Duration;

/// Per-invocation caps.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock deadline for one call into a connector. Stops infinite loops and hangs.
    pub deadline: Duration,
    /// Linear memory, counted over all memories of the instance. Stops memory hogs from
    /// taking the host's memory.
    pub memory_bytes: usize,
    /// Core instances per store. A connector has a handful; stops instance floods.
    pub instances: usize,
    /// Tables per store, and elements per table. Stops table growth attacks.
    pub tables: usize,
    pub table_elements: usize,
    /// Resource handles alive at once in one store: WASI's (streams, pollables) in the
    /// host's table, and the component's own handles. Rust's std uses a handful; wasmtime's
    /// defaults (100,000 and 1,000,000) would let one call hold tens of MiB of host memory
    /// in handles it never drops. Past it, the call traps.
    pub resource_handles: usize,
    /// WebAssembly stack. Stops deep recursion from reaching the host's stack.
    pub wasm_stack_bytes: usize,
    /// Bytes of log (the `log` import plus stdout and stderr) kept per invocation. Stops
    /// log floods; the excess is dropped and counted.
    pub log_bytes: usize,
    /// Bytes of output JSON accepted from one invocation.
    pub output_bytes: usize,
    /// Size of a component file the host will load. Stops huge files, and bounds compile time.
    pub component_bytes: u64,
    /// How long a load waits for Cranelift to compile a component. Stops a file crafted to be
    /// slow to compile from holding a load (and `cordon serve`'s start) for long. The
    /// compile itself cannot be interrupted; it finishes on its own thread, bounded by
    /// `component_bytes`, and its result is dropped.
    pub compile_time: Duration,
    pub http: HttpLimits,
}

/// Caps on outbound HTTP.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// One request, connect to last body byte. The invocation deadline also applies.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub request_body_bytes: usize,
    pub response_body_bytes: usize,
    /// Requests one invocation may send. Stops a connector from using the host as a flood cannon.
    pub requests_per_invocation: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(30),
            memory_bytes: 64 << 20,
            instances: 32,
            tables: 32,
            table_elements: 100_000,
            resource_handles: 4096,
            wasm_stack_bytes: 512 << 10,
            log_bytes: 64 << 10,
            output_bytes: 8 << 20,
            component_bytes: 32 << 20,
            compile_time: Duration::from_secs(60),
            http: HttpLimits::default(),
        }
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            request_body_bytes: 8 << 20,
            response_body_bytes: 16 << 20,
            requests_per_invocation: 256,
        }
    }
}
