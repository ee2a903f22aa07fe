//! The one wasmtime `Engine` of a runtime: epoch interruption for deadlines, the pooling
//! allocator sized for the concurrency the operator asked for, and a stack cap.

use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::limits::Limits;
use crate::runtime::InstanceAllocation;

/// How often the epoch advances. Every tick, a running guest checks its deadline and yields
/// to the async executor, so a spinning connector neither overruns its deadline by more than
/// about this much nor holds a worker thread from other invocations.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Bytes of a freed linear memory slot that stay resident and are reset in place. A call of
/// a typical connector dirties a few hundred KiB (stack, heap, data); one that receives a
/// 1 MiB HTTP body dirties over 2 MiB (the 1 MiB stack, then the body). With 1 MiB kept, the
/// next instance in that slot took a page fault on every page past the first MiB: a 1 MiB
/// request from a fresh instance took 511 µs, 481 µs with 4 MiB kept, 454 µs from a reused
/// instance (BENCHMARKS.md). Beyond this, the rest goes back to the kernel. An idle slot keeps
/// what its last call dirtied, up to this much.
const MEMORY_KEEP_RESIDENT: usize = 4 << 20;

/// The same for tables: a Rust connector's function table is a few KiB.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

pub(crate) fn build(
    limits: &Limits,
    max_concurrent_instances: u32,
    allocation: InstanceAllocation,
) -> anyhow::Result<Engine> {
    let n = max_concurrent_instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        // A Rust connector is a few core instances (its module plus adapter shims).
        .total_core_instances(n.saturating_mul(8))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .max_memories_per_component(4)
        .max_tables_per_component(8)
        .max_core_instances_per_component(16)
        .max_memory_size(limits.memory_bytes)
        .table_elements(limits.table_elements)
        // A fresh instance per call is only cheap if its slot comes back ready to use. By
        // default wasmtime gives a freed slot's pages back with `madvise`, and the next call
        // takes a page fault on every page it touches again: together 60 % of an isolated
        // call in our profiles. Keeping the pages resident and resetting only the ones the
        // last call dirtied (found with Linux's PAGEMAP_SCAN, kernel 6.7+; older kernels and
        // other systems fall back to resetting the first bytes with memset) took store +
        // instantiate + drop from 34 µs to 14 µs. See BENCHMARKS.md.
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(limits.wasm_stack_bytes)
        // Traps report why, not where; a long backtrace only costs time on every trap.
        .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(16))
        .parallel_compilation(true)
        // Tables stay lazily initialized (wasmtime's default): filling them at instantiation
        // was tried with spare instances and made store + instantiate + drop 23 µs instead of
        // 13 µs, more than it saved inside the call (BENCHMARKS.md).
        .memory_init_cow(true);
    if allocation == InstanceAllocation::Pooling {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    let engine =
        Engine::new(&config).map_err(|e| anyhow::anyhow!("cannot create the wasmtime engine: {e}"))?;
    start_epoch_ticker(&engine);
    Ok(engine)
}

/// Advances the epoch until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("cordon-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        // Without the ticker, deadlines would never fire: refuse to run rather than run unbounded.
        panic!("cannot start the epoch thread that enforces deadlines: {e}");
    }
}

/// A stable hash of everything in the engine's configuration that affects compiled code, so
/// the artifact cache never serves code compiled under another configuration.
pub(crate) fn configuration_hash(engine: &Engine) -> String {
    use std::hash::{Hash, Hasher};
    // DefaultHasher::new() uses fixed keys: stable across processes of the same build.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}
