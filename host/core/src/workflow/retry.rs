//! `retryPolicy` with the Logic Apps defaults and limits. (The clock retries wait on is the
//! engine's, in cordon-host's `workflow::clock`.)
//!
//! Logic Apps spreads exponential delays randomly inside a range; cordon uses the range's
//! deterministic centre, `interval × 2^(n-1)` clamped to the minimum and maximum, so a run's
//! timing can be predicted and tested. A `Retry-After` from the service replaces the computed
//! delay (capped at the 1-day maximum interval).

use std::time::Duration;

use serde_json::Value;

use super::duration::parse_iso8601_duration;

pub const MAX_RETRIES: u32 = 90;
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

#[derive(Debug, Clone, PartialEq)]
pub enum RetryPolicy {
    /// No retries.
    None,
    Fixed {
        count: u32,
        interval: Duration,
    },
    Exponential {
        count: u32,
        interval: Duration,
        minimum: Duration,
        maximum: Duration,
    },
}

impl Default for RetryPolicy {
    /// The documented default: up to four retries at exponentially growing intervals, scaled by
    /// 7.5 seconds and kept between 5 and 45 seconds.
    fn default() -> Self {
        RetryPolicy::Exponential {
            count: 4,
            interval: Duration::from_millis(7_500),
            minimum: Duration::from_secs(5),
            maximum: Duration::from_secs(45),
        }
    }
}

impl RetryPolicy {
    pub fn from_json(value: &Value) -> Result<RetryPolicy, String> {
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .ok_or("retryPolicy needs a \"type\": none, fixed or exponential")?;
        let interval = |key: &str, default: Option<Duration>| -> Result<Duration, String> {
            let written = value.get(key).and_then(Value::as_str);
            let d = match written {
                Some(text) => parse_iso8601_duration(text)?,
                None => default.ok_or_else(|| format!("retryPolicy of type {kind:?} needs \"{key}\""))?,
            };
            if d < MIN_INTERVAL || d > MAX_INTERVAL {
                // As written ("P10000D"), not as a count of seconds.
                let got = written.map_or_else(|| format!("{d:?}"), |text| format!("{text:?}"));
                return Err(format!(
                    "retryPolicy {key} must be between PT5S and P1D, got {got}"
                ));
            }
            Ok(d)
        };
        let count = || -> Result<u32, String> {
            let c = value
                .get("count")
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("retryPolicy of type {kind:?} needs an integer \"count\""))?;
            if c == 0 || c > u64::from(MAX_RETRIES) {
                return Err(format!(
                    "retryPolicy count must be from 1 to {MAX_RETRIES}, got {c}"
                ));
            }
            Ok(c as u32)
        };
        match kind.to_ascii_lowercase().as_str() {
            "none" => Ok(RetryPolicy::None),
            "fixed" => Ok(RetryPolicy::Fixed {
                count: count()?,
                interval: interval("interval", None)?,
            }),
            "exponential" => {
                let minimum = interval("minimumInterval", Some(MIN_INTERVAL))?;
                let maximum = interval("maximumInterval", Some(MAX_INTERVAL))?;
                if minimum > maximum {
                    return Err("retryPolicy minimumInterval is above maximumInterval".to_owned());
                }
                Ok(RetryPolicy::Exponential {
                    count: count()?,
                    interval: interval("interval", None)?,
                    minimum,
                    maximum,
                })
            }
            other => Err(format!(
                "retryPolicy type {other:?} is not none, fixed or exponential"
            )),
        }
    }

    /// How long to wait before retry number `retry` (1 for the first retry), or `None` when the
    /// policy allows no more.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let computed = match self {
            RetryPolicy::None => return None,
            RetryPolicy::Fixed { count, interval } => (retry <= *count).then_some(*interval)?,
            RetryPolicy::Exponential {
                count,
                interval,
                minimum,
                maximum,
            } => {
                if retry > *count {
                    return None;
                }
                let factor = 2f64.powi(retry.saturating_sub(1).min(30) as i32);
                interval.mul_f64(factor).clamp(*minimum, *maximum)
            }
        };
        Some(retry_after.map_or(computed, |r| r.min(MAX_INTERVAL)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_policy_grows_and_stays_in_bounds() {
        let policy = RetryPolicy::default();
        let delays: Vec<_> = (1..=5).map(|n| policy.delay(n, None)).collect();
        assert_eq!(
            delays,
            vec![
                Some(Duration::from_millis(7_500)),
                Some(Duration::from_secs(15)),
                Some(Duration::from_secs(30)),
                Some(Duration::from_secs(45)),
                None
            ]
        );
    }

    #[test]
    fn fixed_and_none_policies() {
        let fixed = RetryPolicy::from_json(&json!({"type": "fixed", "count": 2, "interval": "PT10S"}))
            .expect("valid");
        assert_eq!(fixed.delay(2, None), Some(Duration::from_secs(10)));
        assert_eq!(fixed.delay(3, None), None);
        assert_eq!(
            RetryPolicy::from_json(&json!({"type": "none"}))
                .expect("valid")
                .delay(1, None),
            None
        );
    }

    #[test]
    fn retry_after_replaces_the_computed_delay() {
        let fixed = RetryPolicy::Fixed {
            count: 3,
            interval: Duration::from_secs(10),
        };
        assert_eq!(
            fixed.delay(1, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn limits_are_enforced() {
        for (policy, wanted) in [
            (
                json!({"type": "fixed", "count": 91, "interval": "PT10S"}),
                "from 1 to 90",
            ),
            (
                json!({"type": "fixed", "count": 1, "interval": "PT1S"}),
                "between PT5S and P1D, got \"PT1S\"",
            ),
            (
                json!({"type": "fixed", "count": 1, "interval": "P2D"}),
                "between PT5S and P1D, got \"P2D\"",
            ),
            (json!({"type": "fixed", "count": 1}), "needs \"interval\""),
            (json!({"type": "sometimes"}), "is not none, fixed or exponential"),
        ] {
            let error = RetryPolicy::from_json(&policy).expect_err("invalid");
            assert!(error.contains(wanted), "{error}");
        }
    }
}
