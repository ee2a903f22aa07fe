//! A tenant's share of the machine's CPU, enforced at the guests' yield points.
//!
//! Every running guest is interrupted by the epoch ticker about once per tick (1 ms) to check
//! its deadline. At each interruption the guest pays its runtime's [`CpuShare`] for the
//! slice it just ran (the time since it last resumed, so a late ticker on a busy machine does
//! not hand out longer slices for the same price) and reserves the next. A share of `c`
//! cores hands out one tick of guest time every `1 ms / c`, with a burst of one window's
//! worth (10 ms of the share) for a tenant that was idle. A reservation is a slot on that
//! schedule, so a guest over the share sleeps until exactly its own slot.
//!
//! Why reservations, not a per-window budget: with a budget, every throttled guest wakes at
//! each window's start, the first few win and the rest go back to sleep, so fifty spinning
//! guests make a burst of wake-ups every 10 ms, and whatever of another tenant's work lands
//! behind that burst makes its tail latency (measured in BENCHMARKS.md). With reservations
//! the throttled guests wake one at a time, in the order they asked, spaced by the share.
//! A guest pays for a slice when it is interrupted, after running it, so each throttled
//! guest may overrun by one slice once; the schedule then delays it by that much, so the
//! share holds over any longer time.
//!
//! It meters guest code only: host work for the tenant (HTTP, JSON, the history) is not
//! charged, and a tenant under its share uses spare CPU freely up to the share (it is a cap,
//! not a reservation of cores).

use std::time::{Duration, Instant};

use crate::engine::EPOCH_TICK;
use crate::rate::Rate;

/// How much unused share a tenant may save up and spend at once.
pub const WINDOW: Duration = Duration::from_millis(10);

/// The most one interruption charges. A guest is interrupted about once per tick, but after a
/// host call (an HTTP request) the time since it last ran was spent waiting, not computing.
pub const MAX_SLICE: Duration = Duration::from_millis(5);

/// A cap on the CPU one runtime's guests use, in cores (0.5 is half of one core).
#[derive(Debug)]
pub struct CpuShare {
    /// Units of one microsecond of guest time.
    micros: Rate,
}

impl CpuShare {
    pub fn new(cores: f64) -> CpuShare {
        let cores = cores.max(f64::MIN_POSITIVE);
        // A tick of guest time costs EPOCH_TICK / cores on the share's schedule, but at most
        // a window, so a tiny share still runs a tick per window instead of stopping.
        let tick_cost = EPOCH_TICK.div_f64(cores).min(WINDOW);
        let micro_cost = tick_cost / EPOCH_TICK.as_micros() as u32;
        CpuShare {
            micros: Rate::with_interval(micro_cost, WINDOW.saturating_sub(tick_cost)),
        }
    }

    /// Charges the slice a guest ran (`ran`: the time since it last resumed, at least one
    /// tick and at most [`MAX_SLICE`]) and reserves the next; returns how long the guest must
    /// sleep before running it: zero while the tenant is within its share.
    pub fn reserve(&self, now: Instant, ran: Duration) -> Duration {
        let ran = ran.clamp(EPOCH_TICK, MAX_SLICE);
        self.micros.reserve(now, ran.as_micros() as u64)
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
        assert_eq!(share.reserve(start, EPOCH_TICK), Duration::ZERO);
        assert_eq!(share.reserve(start, EPOCH_TICK), Duration::ZERO);
        // Three more guests asking at once are each given their own slot, 5 ms apart.
        let waits: Vec<_> = (0..3).map(|_| share.reserve(start, EPOCH_TICK)).collect();
        assert_eq!(waits, [5, 10, 15].map(Duration::from_millis), "reserved slots");
        // After a quiet second, the saved-up share is one burst, not a second's worth.
        let later = start + Duration::from_secs(1);
        assert_eq!(share.reserve(later, EPOCH_TICK), Duration::ZERO);
        assert_eq!(share.reserve(later, EPOCH_TICK), Duration::ZERO);
        assert_eq!(share.reserve(later, EPOCH_TICK), Duration::from_millis(5));
    }

    #[test]
    fn a_slice_costs_what_it_ran_up_to_the_most_one_interruption_charges() {
        let now = Instant::now() + Duration::from_secs(1);
        let share = CpuShare::new(0.2); // a burst of 5 ms of the schedule
        // 3 ms of guest time costs 15 ms of a 0.2-core schedule: 10 ms past the burst.
        assert_eq!(share.reserve(now, Duration::from_millis(3)), Duration::ZERO);
        assert_eq!(share.reserve(now, EPOCH_TICK), Duration::from_millis(10));
        // After a 200 ms host call, only MAX_SLICE is charged.
        let other = CpuShare::new(0.2);
        assert_eq!(other.reserve(now, Duration::from_millis(200)), Duration::ZERO);
        assert_eq!(other.reserve(now, EPOCH_TICK), Duration::from_millis(20));
    }

    #[test]
    fn a_tiny_share_still_runs_a_tick_per_window_and_a_large_one_many() {
        let now = Instant::now() + Duration::from_secs(1);
        let tiny = CpuShare::new(0.0001);
        assert_eq!(tiny.reserve(now, EPOCH_TICK), Duration::ZERO);
        assert_eq!(tiny.reserve(now, EPOCH_TICK), WINDOW);
        let two_cores = CpuShare::new(2.0);
        assert!((0..20).all(|_| two_cores.reserve(now, EPOCH_TICK).is_zero()));
        assert!(!two_cores.reserve(now, EPOCH_TICK).is_zero());
    }
}
