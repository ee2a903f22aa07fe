use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use cordon_host::{CallInfo, InstanceAllocation, InvokeError, Limits, Runtime, RuntimeConfig};
use cordon_tests::{builtin, connect, grant, hostile, runtime_config, serve};
use serde_json::json;

fn runtime_with(limits: Limits) -> Runtime {
    Runtime::new(RuntimeConfig {
        limits,
        ..runtime_config()
    })
    .expect("runtime")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_stops_at_the_deadline_and_the_next_call_works() {
    let deadline = Duration::from_millis(500);
    let runtime = runtime_with(Limits {
        deadline,
        ..Limits::default()
    });
    let connection = connect(&hostile(&runtime).await, grant(&[]));
    let started = Instant::now();
    let spun = connection
        .invoke("spin", &json!(null), &CallInfo::default())
        .await;
    let elapsed = started.elapsed();
    assert!(
        matches!(spun.result, Err(InvokeError::DeadlineExceeded(d)) if d == deadline),
        "{:?}",
        spun.result
    );
    // Generous slack: this bounds a runaway, it does not measure speed.
    assert!(elapsed < deadline + Duration::from_secs(3), "took {elapsed:?}");

    let next = connection.invoke("ok", &json!(null), &CallInfo::default()).await;
    assert_eq!(next.result.expect("next call works"), json!(true));
}

#[tokio::test]
async fn a_memory_hog_is_refused_and_the_next_call_works() {
    let runtime = runtime_with(Limits {
        memory_bytes: 16 << 20,
        ..Limits::default()
    });
    let connection = connect(&hostile(&runtime).await, grant(&[]));
    let hog = connection.invoke("hog", &json!(null), &CallInfo::default()).await;
    assert!(
        matches!(hog.result, Err(InvokeError::MemoryLimit(cap)) if cap == 16 << 20),
        "{:?}",
        hog.result
    );
    let next = connection.invoke("ok", &json!(null), &CallInfo::default()).await;
    assert_eq!(next.result.expect("next call works"), json!(true));
}

#[tokio::test]
async fn deep_recursion_traps_without_harming_the_host() {
    let runtime = runtime_with(Limits::default());
    let connection = connect(&hostile(&runtime).await, grant(&[]));
    let deep = connection
        .invoke("recurse", &json!(1), &CallInfo::default())
        .await;
    match deep.result {
        // Either the wasm call stack or Rust's shadow stack in linear memory runs out first.
        Err(InvokeError::Trap(message)) => assert!(
            message.contains("stack exhausted") || message.contains("out of bounds memory access"),
            "{message}"
        ),
        other => panic!("expected a stack overflow trap, got {other:?}"),
    }
    let next = connection.invoke("ok", &json!(null), &CallInfo::default()).await;
    assert_eq!(next.result.expect("next call works"), json!(true));
}

#[tokio::test]
async fn a_panic_is_a_trap_and_the_next_call_works() {
    let runtime = runtime_with(Limits::default());
    let connection = connect(&hostile(&runtime).await, grant(&[]));
    let panicked = connection
        .invoke("panic", &json!(null), &CallInfo::default())
        .await;
    assert!(
        matches!(panicked.result, Err(InvokeError::Trap(_))),
        "{:?}",
        panicked.result
    );
    // The panic message went to stderr, which is captured into the connector's log.
    assert!(
        panicked
            .log
            .lines
            .iter()
            .any(|l| l.message.contains("panics on purpose")),
        "{:?}",
        panicked.log
    );
    let next = connection.invoke("ok", &json!(null), &CallInfo::default()).await;
    assert!(next.result.is_ok());
}

#[tokio::test]
async fn a_log_flood_is_capped_and_counted() {
    let runtime = runtime_with(Limits {
        log_bytes: 4096,
        ..Limits::default()
    });
    let connection = connect(&hostile(&runtime).await, grant(&[]));
    let flood = connection
        .invoke("log_flood", &json!(5000), &CallInfo::default())
        .await;
    assert_eq!(flood.result.expect("flooding is not an error"), json!(5000));
    let kept: usize = flood.log.lines.iter().map(|l| l.message.len()).sum();
    assert!(kept <= 4096, "kept {kept} bytes");
    assert!(
        flood.log.dropped_lines > 9000,
        "dropped {}",
        flood.log.dropped_lines
    );
}

#[tokio::test]
async fn output_over_the_cap_is_refused() {
    let runtime = runtime_with(Limits {
        output_bytes: 1000,
        ..Limits::default()
    });
    let connection = connect(&hostile(&runtime).await, grant(&[]));
    let big = connection
        .invoke("big_output", &json!(5000), &CallInfo::default())
        .await;
    assert!(
        matches!(big.result, Err(InvokeError::OutputTooLarge { cap: 1000, .. })),
        "{:?}",
        big.result
    );
    let small = connection
        .invoke("big_output", &json!(10), &CallInfo::default())
        .await;
    assert_eq!(small.result.expect("small output"), json!("yyyyyyyyyy"));
}

#[tokio::test]
async fn input_that_breaks_the_schema_never_reaches_the_connector() {
    let runtime = runtime_with(Limits::default());
    let connection = connect(&hostile(&runtime).await, grant(&[]));
    let bad = connection
        .invoke("big_output", &json!("not a number"), &CallInfo::default())
        .await;
    match bad.result {
        Err(InvokeError::InvalidInput { reasons, .. }) => assert!(!reasons.is_empty()),
        other => panic!("expected invalid input, got {other:?}"),
    }
    let unknown = connection
        .invoke("nope", &json!(null), &CallInfo::default())
        .await;
    match unknown.result {
        Err(error @ InvokeError::UnknownOperation { .. }) => {
            assert!(error.to_string().contains("spin"), "lists what exists: {error}")
        }
        other => panic!("expected unknown operation, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_at_once_each_get_their_own_instance() {
    let runtime = runtime_with(Limits::default());
    let connection = connect(&hostile(&runtime).await, grant(&[]));
    let calls = (0..12).map(|i| {
        let connection = connection.clone();
        tokio::spawn(async move {
            connection
                .invoke("big_output", &json!(i), &CallInfo::default())
                .await
        })
    });
    for (i, call) in calls.enumerate() {
        let result = call.await.expect("task").result.expect("call");
        assert_eq!(result.as_str().map(str::len), Some(i));
    }
}

/// With more calls than pool slots, the extra calls wait for a slot; none fails, and no more
/// instances run at once than the pool has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_pool_wait_for_a_slot_instead_of_failing() {
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let router = Router::new().route(
        "/pause",
        get({
            let (now, most) = (now.clone(), most.clone());
            move || async move {
                let current = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(current, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                "done"
            }
        }),
    );
    let addr = serve(router).await;
    let runtime = Runtime::new(RuntimeConfig {
        max_concurrent_instances: 2,
        ..runtime_config()
    })
    .expect("runtime");
    let connection = connect(&hostile(&runtime).await, grant(&[&format!("http://{addr}")]));
    let url = format!("http://{addr}/pause");
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let connection = connection.clone();
            let input = json!({ "url": url });
            tokio::spawn(async move { connection.invoke("fetch", &input, &CallInfo::default()).await })
        })
        .collect();
    for call in calls {
        let output = call
            .await
            .expect("task")
            .result
            .expect("the call waits, then succeeds");
        assert_eq!(output["outcome"], "response", "{output}");
        assert_eq!(output["body"], "done", "{output}");
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "two slots: two requests at once, no more"
    );
    assert_eq!(runtime.metrics().live_instances(), 0);
}

/// On-demand allocation (no pool) runs the same calls with the same results.
#[tokio::test]
async fn on_demand_allocation_gives_the_same_answers() {
    let runtime = Runtime::new(RuntimeConfig {
        allocation: InstanceAllocation::OnDemand,
        ..runtime_config()
    })
    .expect("runtime");
    let connector = runtime
        .load_bytes(builtin("json-transform"), "json-transform")
        .await
        .expect("load");
    let connection = connect(&connector, grant(&[]));
    let input = json!({ "value": [{"a": 1, "b": 2}, {"a": 3, "b": 4}], "fields": ["a"] });
    let output = connection
        .invoke("pick", &input, &CallInfo::default())
        .await
        .result
        .expect("pick");
    assert_eq!(output, json!([{"a": 1}, {"a": 3}]));
    // The memory cap still holds without the pool's per-slot limit.
    let hog = connect(&hostile(&runtime).await, grant(&[]))
        .invoke("hog", &json!(null), &CallInfo::default())
        .await;
    assert!(
        matches!(hog.result, Err(InvokeError::MemoryLimit(_))),
        "{:?}",
        hog.result
    );
}

/// A call that finds every slot busy for its whole deadline fails with a typed, retryable
/// error instead of waiting without end; the runtime serves the next call normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_slot_is_bounded_by_the_deadline() {
    let deadline = Duration::from_millis(300);
    let runtime = Runtime::new(RuntimeConfig {
        limits: Limits {
            deadline,
            ..Limits::default()
        },
        max_concurrent_instances: 1,
        ..runtime_config()
    })
    .expect("runtime");
    let connection = connect(&hostile(&runtime).await, grant(&[]));
    // One slot, three spinners: the first holds the slot until its deadline, so the third
    // cannot get it before its own wait runs out.
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let connection = connection.clone();
            tokio::spawn(async move {
                connection
                    .invoke("spin", &json!(null), &CallInfo::default())
                    .await
            })
        })
        .collect();
    let mut busy = 0;
    for call in calls {
        match call.await.expect("task").result {
            Err(InvokeError::DeadlineExceeded(_)) => {}
            Err(error @ InvokeError::NoFreeInstance(_)) => {
                assert!(error.is_retryable());
                assert_eq!(error.kind(), "no_free_instance");
                busy += 1;
            }
            other => panic!("expected a deadline or a busy runtime, got {other:?}"),
        }
    }
    assert!(busy >= 1, "at least one call found no free slot");
    let next = connection.invoke("ok", &json!(null), &CallInfo::default()).await;
    assert_eq!(next.result.expect("the next call works"), json!(true));
}

/// CPU time this thread has used (user + system), from `/proc/thread-self/stat`, in the
/// kernel's clock ticks of 10 ms.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("Linux /proc");
    let after_name = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

/// Spins the hostile connector until its deadline on this thread; returns the CPU it took.
async fn cpu_of_a_spin(runtime: &Runtime) -> Duration {
    let connection = connect(&hostile(runtime).await, grant(&[]));
    let before = thread_cpu();
    let spun = connection
        .invoke("spin", &json!(null), &CallInfo::default())
        .await;
    let used = thread_cpu() - before;
    assert!(
        matches!(spun.result, Err(InvokeError::DeadlineExceeded(_))),
        "{:?}",
        spun.result
    );
    let next = connection.invoke("ok", &json!(null), &CallInfo::default()).await;
    assert_eq!(next.result.expect("the next call works"), json!(true));
    used
}

// The default current-thread runtime: the guest runs on the test's own thread, so that
// thread's CPU time is the guest's, whatever other tests do meanwhile.
#[tokio::test]
async fn a_cpu_share_caps_what_a_spinning_guest_burns_by_its_deadline() {
    let limits = Limits {
        deadline: Duration::from_secs(1),
        ..Limits::default()
    };
    let capped = Runtime::new(RuntimeConfig {
        limits: limits.clone(),
        cpu_share: Some(0.05),
        ..runtime_config()
    })
    .expect("runtime");
    let uncapped = runtime_with(limits);
    let capped_cpu = cpu_of_a_spin(&capped).await;
    let uncapped_cpu = cpu_of_a_spin(&uncapped).await;
    // 0.05 of a core for 1 s is 50 ms, plus a 10 ms burst; the bound leaves room for a busy
    // machine and coarse accounting (a busy machine gives a guest less CPU, never more).
    assert!(
        capped_cpu < Duration::from_millis(400),
        "capped guest used {capped_cpu:?}"
    );
    assert!(
        uncapped_cpu > capped_cpu * 2,
        "the measurement sees a spin: uncapped {uncapped_cpu:?}, capped {capped_cpu:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_guests_in_several_tenants_at_once_all_stop_and_each_tenant_works_after() {
    let tenant_runtime = |name: &str| {
        Runtime::new(RuntimeConfig {
            limits: Limits {
                deadline: Duration::from_millis(500),
                ..Limits::default()
            },
            tenant: Some(cordon_host::ids::TenantId::new(name).expect("tenant id")),
            cpu_share: Some(0.2),
            ..runtime_config()
        })
        .expect("runtime")
    };
    let mut tenants = Vec::new();
    for name in ["acme", "globex", "initech"] {
        let runtime = tenant_runtime(name);
        let connection = connect(&hostile(&runtime).await, grant(&[]));
        tenants.push((runtime, connection));
    }
    let spins = tenants.iter().flat_map(|(_, connection)| {
        (0..4).map(move |_| async move {
            connection
                .invoke("spin", &json!(null), &CallInfo::default())
                .await
                .result
        })
    });
    // Meanwhile a tenant without a spinner keeps answering.
    let quiet = connect(&builtin_connector("json-transform").await, grant(&[]));
    let quiet_calls = async {
        let mut answered = 0;
        for _ in 0..20 {
            let call = quiet
                .invoke(
                    "pick",
                    &json!({"value": [{"a": 1}], "fields": ["a"]}),
                    &CallInfo::default(),
                )
                .await;
            assert_eq!(call.result.expect("the quiet tenant answers"), json!([{"a": 1}]));
            answered += 1;
        }
        answered
    };
    let (results, answered) = tokio::join!(futures_util::future::join_all(spins), quiet_calls);
    assert_eq!(answered, 20);
    assert_eq!(results.len(), 12);
    for result in results {
        assert!(
            matches!(result, Err(InvokeError::DeadlineExceeded(_))),
            "{result:?}"
        );
    }
    for (runtime, connection) in &tenants {
        let next = connection.invoke("ok", &json!(null), &CallInfo::default()).await;
        assert_eq!(next.result.expect("the tenant's next call works"), json!(true));
        assert_eq!(runtime.metrics().live_instances(), 0, "no instance left behind");
    }
}

async fn builtin_connector(name: &str) -> cordon_host::Connector {
    Runtime::new(runtime_config())
        .expect("runtime")
        .load_builtin(cordon_host::builtin::find(name).expect("built in"))
        .await
        .expect("loads")
}
