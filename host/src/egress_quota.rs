//! A tenant's outbound quotas, shared by every connection of its runtime: requests in flight
//! at once (`requestsInFlight`) and bytes sent and received per minute
//! (`egressBytesPerMinute`).
//!
//! - **In flight.** A request takes a slot before it is sent and gives it back when its
//!   response has been read. With every slot taken, it waits (calls beyond the quota slow
//!   down rather than fail), at most until its call's deadline; then it is refused as a quota
//!   denial.
//! - **Bytes.** Request and response bodies are counted after each exchange, even past the
//!   quota (a response already read is not thrown away); a request is refused while the count
//!   is over, with a denial that says how long until there is room. A tenant that was quiet
//!   may use a whole minute's bytes at once.
//!
//! A refusal is a [`Denial`] of kind `quota`: the guest gets the typed `denied` error and the
//! audit log an event, like any other policy refusal. If the call then fails, the host
//! reports the failure as rate limited (with the quota's `retry_after`), so the action's
//! retry policy waits for the quota instead of giving up (`connector.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::grant::{Denial, DenialKind};
use crate::rate::Rate;

/// What a tenant's connectors may send and receive; `None` fields are unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EgressQuotas {
    pub requests_in_flight: Option<u32>,
    pub bytes_per_minute: Option<u64>,
}

/// The live state of a runtime's [`EgressQuotas`].
#[derive(Debug)]
pub struct EgressQuota {
    quotas: EgressQuotas,
    in_flight: Option<Arc<Semaphore>>,
    bytes: Option<Rate>,
}

/// A refused request: the denial, and when the quota has room again if that is known.
#[derive(Debug, Clone)]
pub struct Refused {
    pub denial: Denial,
    pub retry_after: Option<Duration>,
}

/// A request's slot in flight; dropping it gives the slot back.
#[derive(Debug)]
pub struct InFlight {
    _permit: Option<OwnedSemaphorePermit>,
}

impl EgressQuota {
    pub fn new(quotas: EgressQuotas) -> EgressQuota {
        EgressQuota {
            quotas,
            in_flight: quotas
                .requests_in_flight
                .map(|n| Arc::new(Semaphore::new(n as usize))),
            bytes: quotas.bytes_per_minute.map(|n| {
                let n = n.max(1) as f64;
                Rate::per(n, Duration::from_secs(60), n)
            }),
        }
    }

    /// Admits one request to `asked` (its destination, for the denial), waiting for a slot in
    /// flight until `deadline` at most.
    pub async fn admit(&self, asked: &str, deadline: Instant) -> Result<InFlight, Refused> {
        if let (Some(bytes), Some(per_minute)) = (&self.bytes, self.quotas.bytes_per_minute)
            && let Err(wait) = bytes.try_take(Instant::now(), 0)
        {
            return Err(Refused {
                denial: Denial {
                    kind: DenialKind::Quota,
                    asked: asked.to_owned(),
                    missing: format!(
                        "this tenant's connectors sent and received their {per_minute} bytes per minute (quota egressBytesPerMinute); there is room again in {} s",
                        wait.as_secs().max(1)
                    ),
                },
                retry_after: Some(wait),
            });
        }
        let Some(slots) = &self.in_flight else {
            return Ok(InFlight { _permit: None });
        };
        match tokio::time::timeout_at(deadline.into(), slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(InFlight {
                _permit: Some(permit),
            }),
            // The semaphore is never closed; a closed one is treated like a full one.
            Ok(Err(_)) | Err(_) => Err(Refused {
                denial: Denial {
                    kind: DenialKind::Quota,
                    asked: asked.to_owned(),
                    missing: format!(
                        "all {} of this tenant's requests in flight (quota requestsInFlight) stayed busy until the call's deadline",
                        self.quotas.requests_in_flight.unwrap_or_default()
                    ),
                },
                retry_after: None,
            }),
        }
    }

    /// Counts the bytes of one exchange.
    pub fn charge(&self, bytes: usize) {
        if let Some(rate) = &self.bytes {
            rate.charge(Instant::now(), bytes as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_over_the_quota_refuse_the_next_request_until_there_is_room() {
        let quota = EgressQuota::new(EgressQuotas {
            requests_in_flight: None,
            bytes_per_minute: Some(1000),
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        assert!(quota.admit("https://a.test:443", deadline).await.is_ok());
        quota.charge(1500);
        let refused = quota
            .admit("https://a.test:443", deadline)
            .await
            .expect_err("over");
        assert_eq!(refused.denial.kind, DenialKind::Quota);
        assert!(
            refused.denial.missing.contains("egressBytesPerMinute"),
            "{}",
            refused.denial
        );
        // 500 bytes over a 1000-byte minute: room again in 30 s.
        let retry_after = refused.retry_after.expect("known");
        assert!(
            retry_after <= Duration::from_millis(30_060) && retry_after > Duration::from_secs(29),
            "{retry_after:?}"
        );
    }

    #[tokio::test]
    async fn a_request_waits_for_a_slot_and_is_refused_at_its_deadline() {
        let quota = EgressQuota::new(EgressQuotas {
            requests_in_flight: Some(1),
            bytes_per_minute: None,
        });
        let far = Instant::now() + Duration::from_secs(5);
        let held = quota.admit("https://a.test:443", far).await.expect("first slot");
        let soon = Instant::now() + Duration::from_millis(20);
        let refused = quota.admit("https://a.test:443", soon).await.expect_err("full");
        assert!(
            refused.denial.missing.contains("requestsInFlight"),
            "{}",
            refused.denial
        );
        drop(held);
        assert!(
            quota.admit("https://a.test:443", far).await.is_ok(),
            "slot given back"
        );
    }
}
