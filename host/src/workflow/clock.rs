//! The clock the executor reads and retries wait on: [`SystemClock`] in production,
//! [`FakeClock`] in tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

/// Time as the executor sees it. [`SystemClock`] is real; [`FakeClock`] returns from every
/// sleep at once and remembers how long it was asked to wait, so retry tests need no sleeping.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        // tokio's timer ticks in whole milliseconds and rounds up, which makes a 10 ms Wait take
        // about 11.5 ms. Short waits sleep on a blocking-pool thread instead, where the OS timer
        // overshoots by tens of microseconds.
        if duration < SHORT_WAIT {
            return Box::pin(async move {
                let _ = tokio::task::spawn_blocking(move || precise_sleep(duration)).await;
            });
        }
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Waits shorter than this use the precise (thread) sleep; longer ones the async timer.
const SHORT_WAIT: Duration = Duration::from_millis(100);

/// Sleeps on the OS timer to just before the deadline, then spins the last stretch: the
/// kernel's default timer slack (50 µs) and wake-up latency would otherwise add up over a chain
/// of short waits. The spin is bounded by `SPIN`.
fn precise_sleep(duration: Duration) {
    const SPIN: Duration = Duration::from_micros(200);
    let deadline = std::time::Instant::now() + duration;
    if let Some(coarse) = duration.checked_sub(SPIN) {
        std::thread::sleep(coarse);
    }
    while std::time::Instant::now() < deadline {
        std::hint::spin_loop();
    }
}

/// A clock that moves only when slept on.
#[derive(Debug, Default)]
pub struct FakeClock {
    state: Mutex<(i64, Vec<Duration>)>,
}

impl FakeClock {
    pub fn starting_at(now_ms: i64) -> FakeClock {
        FakeClock {
            state: Mutex::new((now_ms, Vec::new())),
        }
    }

    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1.clone()
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0
    }
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0 += duration.as_millis() as i64;
        state.1.push(duration);
        Box::pin(std::future::ready(()))
    }
}
