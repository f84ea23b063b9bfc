//! How many long-polls and push streams each tenant holds open on this
//! broker. Each one holds a connection, a task and buffers for as long as it
//! waits; without a cap one key could hold thousands and take the file
//! descriptors every tenant shares. Beyond `max_waiting_per_tenant` a new
//! one is refused, 429 `rate-limited` with a retry time, and the tenant's
//! open ones and every other tenant's go on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{BrokerError, BrokerResult};

/// How soon a refused waiter is asked to come back.
const RETRY_AFTER_SECS: u64 = 1;

/// Open long-polls and push streams per tenant.
#[derive(Debug)]
pub struct TenantWaiters {
    /// 0: no cap.
    limit: usize,
    open: Mutex<HashMap<i64, usize>>,
}

/// One open long-poll or push stream; it counts until dropped.
#[derive(Debug)]
pub struct Waiting {
    waiters: Arc<TenantWaiters>,
    tenant_id: i64,
}

impl TenantWaiters {
    pub fn new(limit: usize) -> Arc<TenantWaiters> {
        Arc::new(TenantWaiters {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Counts one more for `tenant_id`, or refuses it at the cap.
    pub fn enter(self: &Arc<Self>, tenant_id: i64) -> BrokerResult<Waiting> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(tenant_id).or_default();
        if self.limit > 0 && *count >= self.limit {
            return Err(BrokerError::RateLimited {
                detail: format!(
                    "this tenant already holds {} long-polls and push streams open on this broker \
                     (the limit); close one or retry",
                    self.limit
                ),
                retry_after_secs: RETRY_AFTER_SECS,
            });
        }
        *count += 1;
        Ok(Waiting {
            waiters: self.clone(),
            tenant_id,
        })
    }

    /// How many `tenant_id` holds open now.
    pub fn open(&self, tenant_id: i64) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&tenant_id).copied().unwrap_or(0)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut open = self.waiters.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.tenant_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.tenant_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_at_its_cap_is_refused_until_one_closes_and_others_are_not() {
        let waiters = TenantWaiters::new(2);
        let a = waiters.enter(1).expect("first");
        let _b = waiters.enter(1).expect("second");
        assert!(matches!(
            waiters.enter(1),
            Err(BrokerError::RateLimited { .. })
        ));
        let _other = waiters.enter(2).expect("another tenant has its own cap");
        drop(a);
        assert_eq!(waiters.open(1), 1);
        let _c = waiters.enter(1).expect("room again once one closed");
        assert_eq!(waiters.open(1), 2);
    }

    #[test]
    fn zero_means_no_cap() {
        let waiters = TenantWaiters::new(0);
        let held: Vec<_> = (0..100)
            .map(|_| waiters.enter(1).expect("no cap"))
            .collect();
        assert_eq!(waiters.open(1), held.len());
    }
}
