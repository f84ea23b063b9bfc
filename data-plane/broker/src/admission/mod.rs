//! Admission: who the caller is ([`auth`]: API keys and JWTs checked
//! offline against the topology feed) and whether what it sends fits the
//! tenant's quotas ([`rate`]: publish rate buckets; [`storage`]: stored
//! bytes across the cluster; [`waiting`]: long-polls and push streams held
//! open per tenant). Every front end admits through [`charge`] before it
//! writes anything, so a refused batch leaves no trace.

pub mod auth;
pub mod rate;
pub mod storage;
pub mod waiting;

use crate::admission::auth::Caller;
use crate::admission::rate::{PublishLimits, RateQuota, RateRefusals, Refusal};
use crate::control::TopologyHandle;
use crate::error::{BrokerError, BrokerResult};

/// The quota state [`charge`] reads and updates.
pub struct Admission<'a> {
    pub topology: &'a TopologyHandle,
    pub limits: &'a PublishLimits,
    pub refusals: &'a RateRefusals,
}

impl Admission<'_> {
    /// The tenant's largest message (or record) in bytes.
    pub fn max_message_bytes(&self, caller: &Caller) -> i64 {
        self.topology
            .current()
            .tenants
            .get(&caller.tenant_id)
            .map_or(0, |t| t.quotas.max_message_bytes)
    }

    /// Admits `count` messages (or records) of `bytes`: refused when the
    /// tenant's storage is full, else charged to its publish rate quotas;
    /// `field` is what a batch too big for one second is blamed on.
    pub fn charge(
        &self,
        caller: &Caller,
        field: &'static str,
        count: u64,
        bytes: u64,
    ) -> BrokerResult<()> {
        let topology = self.topology.current();
        let Some(tenant) = topology.tenants.get(&caller.tenant_id) else {
            return Err(BrokerError::Unauthorized("unknown tenant".into()));
        };
        storage::check(self.topology, caller, bytes)?;
        let quotas = &tenant.quotas;
        let quota = RateQuota {
            messages_per_second: quotas.publish_messages_per_second,
            bytes_per_second: quotas.publish_bytes_per_second,
        };
        // The quota is the tenant's across the cluster: this broker admits its share.
        let brokers = self.topology.live_brokers();
        match self
            .limits
            .admit(caller.tenant_id, quota, brokers, count, bytes)
        {
            Ok(()) => Ok(()),
            Err(Refusal::Later { retry_after }) => {
                self.refusals.add(&caller.tenant);
                Err(BrokerError::RateLimited {
                    detail: format!(
                        "tenant `{}` is over its publish rate ({} messages/s, {} bytes/s, shared by {brokers} live broker(s)); nothing was stored",
                        caller.tenant,
                        quotas.publish_messages_per_second,
                        quotas.publish_bytes_per_second
                    ),
                    retry_after_secs: retry_after.as_secs_f64().ceil().max(1.0) as u64,
                })
            }
            Err(Refusal::TooLarge {
                what,
                needed,
                per_second,
            }) => Err(BrokerError::validation(
                field,
                "rate-quota",
                format!(
                    "this batch has {needed} {what}, more than the tenant's {per_second} per second; split it"
                ),
            )),
        }
    }
}
