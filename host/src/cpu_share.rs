//! A tenant's share of the machine's CPU, enforced at the guests' yield points.
//!
//! Every running guest is interrupted by the epoch ticker once per tick (1 ms) to check its
//! deadline. At each interruption the guest reserves, from its runtime's [`CpuShare`], the
//! next tick it is about to run: about one millisecond of CPU in that tenant's guests. A
//! share of `c` cores hands out one tick every `1 ms / c` on average, with a burst of one
//! window's worth (10 ms of the share) for a tenant that was idle. A reservation is a slot
//! on that schedule, so a guest over the share sleeps until exactly its own slot.
//!
//! Why reservations, not a per-window budget: with a budget, every throttled guest wakes at
//! each window's start, the first few win and the rest go back to sleep, so fifty spinning
//! guests make a burst of wake-ups every 10 ms, and whatever of another tenant's work lands
//! behind that burst makes its tail latency (measured in BENCHMARKS.md). With reservations
//! the throttled guests wake one at a time, in the order they asked, spaced by the share.
//! Paying before running matters as much: charging after the fact would let every waiting
//! guest run a tick first, so fifty spinning guests would take fifty ticks of a two-tick
//! share.
//!
//! It meters guest code only: host work for the tenant (HTTP, JSON, the history) is not
//! charged, and a tenant under its share uses spare CPU freely up to the share (it is a cap,
//! not a reservation of cores).

use std::time::{Duration, Instant};

use crate::engine::EPOCH_TICK;
use crate::rate::Rate;

/// How much unused share a tenant may save up and spend at once.
pub const WINDOW: Duration = Duration::from_millis(10);

/// A cap on the CPU one runtime's guests use, in cores (0.5 is half of one core).
#[derive(Debug)]
pub struct CpuShare {
    ticks: Rate,
}

impl CpuShare {
    pub fn new(cores: f64) -> CpuShare {
        // One tick every EPOCH_TICK / cores, but at least one per window, so a tiny share
        // still runs instead of stopping guests entirely.
        let interval = EPOCH_TICK.div_f64(cores.max(f64::MIN_POSITIVE)).min(WINDOW);
        CpuShare {
            ticks: Rate::with_interval(interval, WINDOW.saturating_sub(interval)),
        }
    }

    /// Reserves the next tick of guest CPU, asked for at `now`. Returns how long the guest
    /// must sleep before running it: zero while the tenant is within its share.
    pub fn reserve(&self, now: Instant) -> Duration {
        self.ticks.reserve(now)
    }
}

/// Sleeps a guest until its reserved tick, or until its deadline if that comes first (the
/// next interruption then turns it into the deadline trap).
pub async fn wait_for_tick(wait: Duration, deadline: Instant) {
    let until = (Instant::now() + wait).min(deadline);
    tokio::time::sleep_until(until.into()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_gives_a_burst_then_one_tick_per_interval_in_order() {
        let share = CpuShare::new(0.2); // one tick every 5 ms, a burst of two
        let start = Instant::now() + Duration::from_secs(1);
        assert_eq!(share.reserve(start), Duration::ZERO);
        assert_eq!(share.reserve(start), Duration::ZERO);
        // Three more guests asking at once are each given their own slot, 5 ms apart.
        let waits: Vec<_> = (0..3).map(|_| share.reserve(start)).collect();
        assert_eq!(waits, [5, 10, 15].map(Duration::from_millis), "reserved slots");
        // After a quiet second, the saved-up share is one burst, not a second's worth.
        let later = start + Duration::from_secs(1);
        assert_eq!(share.reserve(later), Duration::ZERO);
        assert_eq!(share.reserve(later), Duration::ZERO);
        assert_eq!(share.reserve(later), Duration::from_millis(5));
    }

    #[test]
    fn a_tiny_share_still_runs_a_tick_per_window_and_a_large_one_many() {
        let now = Instant::now() + Duration::from_secs(1);
        let tiny = CpuShare::new(0.0001);
        assert_eq!(tiny.reserve(now), Duration::ZERO);
        assert_eq!(tiny.reserve(now), WINDOW);
        let two_cores = CpuShare::new(2.0);
        assert!((0..20).all(|_| two_cores.reserve(now).is_zero()));
        assert!(!two_cores.reserve(now).is_zero());
    }
}
