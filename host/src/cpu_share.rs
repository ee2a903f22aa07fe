//! A tenant's share of the machine's CPU, enforced at the guests' yield points.
//!
//! Every running guest is interrupted by the epoch ticker once per tick (1 ms) to check its
//! deadline. At each interruption the guest pays its runtime's [`CpuShare`] for the next tick
//! it is about to run: about one millisecond of CPU in that tenant's guests. Time is cut into
//! short windows; once a tenant's share of the window is spent, a guest asking for a tick
//! sleeps until a window with room and asks again. Paying before running matters: charging
//! after the fact would let every waiting guest run one tick at each window's start, so fifty
//! spinning guests would take fifty ticks of a two-tick share. So a tenant whose connectors
//! spin can never hold more than its share of the cores, and the others' work is never
//! queued for long behind it (the window is 10 ms).
//!
//! It meters guest code only: host work for the tenant (HTTP, JSON, the history) is not
//! charged, and a tenant under its share uses spare CPU freely up to the share (it is a cap,
//! not a reservation).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::EPOCH_TICK;

/// How long one accounting window lasts.
pub const WINDOW: Duration = Duration::from_millis(10);

/// A cap on the CPU one runtime's guests use, in cores (0.5 is half of one core).
#[derive(Debug)]
pub struct CpuShare {
    ticks_per_window: u64,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    used: u64,
}

impl CpuShare {
    pub fn new(cores: f64) -> CpuShare {
        let ticks = (cores * WINDOW.as_secs_f64() / EPOCH_TICK.as_secs_f64()).floor();
        CpuShare {
            // At least one tick per window, or a tiny share would stop guests entirely.
            ticks_per_window: (ticks as u64).max(1),
            window: Mutex::new(Window {
                started: Instant::now(),
                used: 0,
            }),
        }
    }

    /// Charges one tick of guest CPU at `now`. Returns how long the guest should wait before
    /// it runs again, if the tenant has used its share of the current window.
    pub fn charge(&self, now: Instant) -> Option<Duration> {
        // Two integers; a panic elsewhere cannot leave them half-written.
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if now.duration_since(window.started) >= WINDOW {
            window.started = now;
            window.used = 0;
        }
        window.used += 1;
        (window.used > self.ticks_per_window)
            .then(|| (window.started + WINDOW).saturating_duration_since(now))
    }
}

/// Waits until `share` has a tick for this guest (or its deadline passes, which the next
/// interruption turns into the deadline trap).
pub async fn wait_for_slice(share: Arc<CpuShare>, deadline: Instant) {
    let mut now = Instant::now();
    while now < deadline {
        match share.charge(now) {
            None => return,
            Some(wait) => tokio::time::sleep(wait.min(deadline - now)).await,
        }
        now = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_past_the_share_wait_for_the_next_window() {
        let share = CpuShare::new(0.2); // 2 ticks of each 10 ms window
        let start = Instant::now();
        assert_eq!(share.charge(start), None);
        assert_eq!(share.charge(start + Duration::from_millis(1)), None);
        let wait = share
            .charge(start + Duration::from_millis(3))
            .expect("over the share");
        assert!(
            wait <= Duration::from_millis(7) && wait > Duration::from_millis(6),
            "{wait:?}"
        );
        // A new window starts fresh.
        assert_eq!(share.charge(start + Duration::from_millis(11)), None);
    }

    #[test]
    fn a_tiny_share_still_runs_a_tick_per_window_and_a_large_one_many() {
        let now = Instant::now();
        let tiny = CpuShare::new(0.0001);
        assert_eq!(tiny.charge(now), None);
        assert!(tiny.charge(now).is_some());
        let two_cores = CpuShare::new(2.0);
        assert!((0..20).all(|_| two_cores.charge(now).is_none()));
        assert!(two_cores.charge(now).is_some());
    }
}
