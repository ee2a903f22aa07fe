//! Resource cases that need a component no Rust guest compiles to (see
//! `cordon_tests::hand_made`): growth across several memories, table growth, a loop in the
//! start function. Each one runs when the host loads it (`describe`), and the guest reports
//! by how it ends: if the host's limit held it spins into its deadline, if the limit failed
//! it traps on `unreachable`. After each, the same runtime loads and runs a real connector.

use std::time::Duration;

use cordon_host::{CallInfo, InstanceAllocation, Limits, Runtime, RuntimeConfig};
use cordon_tests::hand_made::component_with;
use cordon_tests::{connect, grant, runtime_config};
use serde_json::json;

const DEADLINE: Duration = Duration::from_millis(300);

fn runtime_with(limits: Limits) -> Runtime {
    runtime_allocating(limits, InstanceAllocation::Pooling)
}

fn runtime_allocating(limits: Limits, allocation: InstanceAllocation) -> Runtime {
    Runtime::new(RuntimeConfig {
        limits: Limits {
            deadline: DEADLINE,
            ..limits
        },
        allocation,
        ..runtime_config()
    })
    .expect("runtime")
}

/// Loads `component`, which must be refused because its `describe` ran into the deadline
/// (not because it trapped), then checks the runtime still runs a real connector.
async fn refused_at_the_deadline(runtime: &Runtime, component: &[u8]) {
    let error = runtime
        .load_bytes(component, "hand-made.wasm")
        .await
        .expect_err("describe never returns");
    let text = error.to_string();
    assert!(
        text.contains("did not finish within") && !text.contains("unreachable"),
        "expected the deadline, got: {text}"
    );
    still_runs_a_real_connector(runtime).await;
}

async fn still_runs_a_real_connector(runtime: &Runtime) {
    let builtin = cordon_host::builtin::find("json-transform").expect("built in");
    let connection = connect(&runtime.load_builtin(builtin).await.expect("loads"), grant(&[]));
    let call = connection
        .invoke(
            "pick",
            &json!({"value": [{"a": 1, "b": 2}], "fields": ["a"]}),
            &CallInfo::default(),
        )
        .await;
    assert_eq!(call.result.expect("the next call works"), json!([{"a": 1}]));
}

/// Core-module text: spin until the host interrupts.
const SPIN: &str = "    loop $spin\n      br $spin\n    end\n    unreachable";

/// Core-module text: grow memory `index` by 16 pages until refused.
fn grow_memory(index: u32) -> String {
    format!(
        "    block $grown{index}\n      loop $grow{index}\n        i32.const 16\n        memory.grow {index}\n        i32.const -1\n        i32.eq\n        br_if $grown{index}\n        br $grow{index}\n      end\n    end"
    )
}

#[tokio::test]
async fn growth_across_several_memories_is_capped_in_total() {
    let limits = Limits {
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    let cap_pages = (limits.memory_bytes >> 16) as u32;
    let body = format!(
        "{}\n{}\n    memory.size 0\n    memory.size 1\n    i32.add\n    i32.const {cap_pages}\n    i32.gt_u\n    if\n      unreachable\n    end\n{SPIN}",
        grow_memory(0),
        grow_memory(1),
    );
    let component = component_with("#describe", &body, "  (memory (;1;) 0)");
    // The default pooling allocator has one memory slot per core instance: a second memory
    // is refused at load, naming the limit.
    let pooled = runtime_with(limits.clone());
    let error = pooled
        .load_bytes(&component, "hand-made.wasm")
        .await
        .expect_err("two memories do not fit a pool slot");
    assert!(
        error.to_string().contains("defined memories count of 2"),
        "{error}"
    );
    // Allocated on demand it loads, and the store's limiter caps both memories together:
    // each alone could grow to the cap, so without the total the guest would trap.
    refused_at_the_deadline(
        &runtime_allocating(limits, InstanceAllocation::OnDemand),
        &component,
    )
    .await;
}

#[tokio::test]
async fn table_growth_stops_at_the_element_cap() {
    let limits = Limits::default();
    let body = format!(
        "    block $grown\n      loop $grow\n        ref.null func\n        i32.const 1000\n        table.grow $t\n        i32.const -1\n        i32.eq\n        br_if $grown\n        br $grow\n      end\n    end\n    table.size $t\n    i32.const {}\n    i32.gt_u\n    if\n      unreachable\n    end\n{SPIN}",
        limits.table_elements
    );
    let component = component_with("#describe", &body, "  (table $t 0 funcref)");
    refused_at_the_deadline(&runtime_with(limits), &component).await;
}

#[tokio::test]
async fn a_loop_in_the_start_function_ends_at_the_deadline() {
    let component = component_with(
        "#describe",
        "    unreachable",
        "  (func $start_spin\n    loop $forever\n      br $forever\n    end\n  )\n  (start $start_spin)",
    );
    refused_at_the_deadline(&runtime_with(Limits::default()), &component).await;
}

/// Just the part of WASI's clock interface this test imports (a subset is enough for an
/// import); `wasmtime-wasi` provides the whole of it.
const WASI_IO_POLL: &str = "package wasi:io@0.2.0;\ninterface poll {\n  resource pollable;\n}\n";
const WASI_CLOCKS: &str = "package wasi:clocks@0.2.0;\ninterface monotonic-clock {\n  use wasi:io/poll@0.2.0.{pollable};\n  type duration = u64;\n  subscribe-duration: func(when: duration) -> pollable;\n}\n";

#[tokio::test]
async fn a_flood_of_resource_handles_traps_at_the_cap() {
    let limits = Limits::default();
    // Twice the cap of WASI resources, never dropped, then spin: with the cap holding the
    // guest traps on the way; without it, it would spin into the deadline.
    let floods = limits.resource_handles * 2;
    let component = cordon_tests::hand_made::component_importing(
        &[
            (WASI_IO_POLL, "wasi:io/poll@0.2.0"),
            (WASI_CLOCKS, "wasi:clocks/monotonic-clock@0.2.0"),
        ],
        "#describe",
        |stub| {
            let subscribe = cordon_tests::hand_made::import_index(stub, "subscribe-duration");
            format!(
                "    (local i32)\n    block $flooded\n      loop $flood\n        i64.const 1000000000\n        call {subscribe}\n        drop\n        local.get 0\n        i32.const 1\n        i32.add\n        local.tee 0\n        i32.const {floods}\n        i32.ge_u\n        br_if $flooded\n        br $flood\n      end\n    end\n{SPIN}"
            )
        },
        "",
    );
    let runtime = runtime_with(limits);
    let error = runtime
        .load_bytes(&component, "hand-made.wasm")
        .await
        .expect_err("describe never returns");
    let text = format!("{error:#}");
    assert!(
        !text.contains("did not finish within"),
        "the flood ran to the deadline: {text}"
    );
    assert!(text.contains("resource"), "{text}");
    still_runs_a_real_connector(&runtime).await;
}
