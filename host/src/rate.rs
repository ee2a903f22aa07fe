//! A rate with a burst, for quotas over time (a tenant's CPU share, runs per minute, egress
//! bytes per minute): the generic cell rate algorithm, one instant of state.
//!
//! The rate hands out one unit every `interval`; a caller that was quiet may take up to a
//! burst at once. The state is the *theoretical arrival time*: when the schedule would be
//! caught up with everything taken so far. A unit is free while that time is no further
//! ahead of now than the burst.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Rate {
    interval: Duration,
    burst: Duration,
    caught_up_at: Mutex<Instant>,
}

impl Rate {
    /// `units` per `period`, of which a caller that was idle may take `burst_units` at once.
    pub fn per(units: f64, period: Duration, burst_units: f64) -> Rate {
        let interval = period.div_f64(units.max(f64::MIN_POSITIVE));
        Rate::with_interval(interval, interval.mul_f64((burst_units - 1.0).max(0.0)))
    }

    /// One unit every `interval`, `burst` of saved-up time beyond the unit itself.
    pub fn with_interval(interval: Duration, burst: Duration) -> Rate {
        Rate {
            interval,
            burst,
            caught_up_at: Mutex::new(Instant::now()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Instant> {
        // One instant; a panic elsewhere cannot leave it half-written.
        self.caught_up_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `units`, asked for at `now`, whether or not they are free; returns how long
    /// the caller must wait before using them (zero within the rate). Callers that reserve at once get
    /// consecutive slots, so they wake one at a time in the order they asked.
    pub fn reserve(&self, now: Instant, units: u64) -> Duration {
        let mut caught_up_at = self.state();
        let start = (*caught_up_at).max(now);
        *caught_up_at = start + self.cost(units);
        start.saturating_duration_since(now + self.burst)
    }

    /// Takes `units` if the rate has room now; otherwise takes nothing and says how long until
    /// it has room for one.
    pub fn try_take(&self, now: Instant, units: u64) -> Result<(), Duration> {
        let mut caught_up_at = self.state();
        let start = (*caught_up_at).max(now);
        let wait = start.saturating_duration_since(now + self.burst);
        if !wait.is_zero() {
            return Err(wait);
        }
        *caught_up_at = start + self.cost(units);
        Ok(())
    }

    /// Records `units` already used, even past the rate: the debt delays what comes next.
    pub fn charge(&self, now: Instant, units: u64) {
        let mut caught_up_at = self.state();
        *caught_up_at = (*caught_up_at).max(now) + self.cost(units);
    }

    fn cost(&self, units: u64) -> Duration {
        self.interval
            .saturating_mul(u32::try_from(units).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_take_allows_the_burst_then_one_per_interval() {
        let rate = Rate::per(3.0, Duration::from_secs(60), 3.0); // one every 20 s, 3 at once
        let now = Instant::now() + Duration::from_secs(1);
        for _ in 0..3 {
            assert_eq!(rate.try_take(now, 1), Ok(()));
        }
        assert_eq!(rate.try_take(now, 1), Err(Duration::from_secs(20)));
        // A refusal takes nothing: the wait does not grow by asking.
        assert_eq!(rate.try_take(now, 1), Err(Duration::from_secs(20)));
        assert_eq!(rate.try_take(now + Duration::from_secs(20), 1), Ok(()));
    }

    #[test]
    fn a_charge_past_the_rate_is_a_debt() {
        let bytes = Rate::per(1000.0, Duration::from_secs(60), 1000.0);
        let now = Instant::now() + Duration::from_secs(1);
        assert_eq!(bytes.try_take(now, 0), Ok(()));
        bytes.charge(now, 800);
        assert_eq!(bytes.try_take(now, 0), Ok(()), "200 bytes of the burst left");
        bytes.charge(now, 800);
        let wait = bytes.try_take(now, 0).expect_err("600 bytes over");
        assert_eq!(wait, Duration::from_millis(36_060), "{wait:?}");
    }
}
