//! One compiled exchange [`Router`] per tenant, built from the topology on
//! first use and rebuilt when the tenant's routing changes (its exchanges,
//! bindings or set of queues), not at every topology version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sluice_routing::{Binding, Exchange, Router};

use crate::control::topology::Topology;

#[derive(Default)]
pub struct Routers {
    cache: Mutex<HashMap<i64, (i64, Arc<Router>)>>,
}

impl Routers {
    /// The tenant's router as of `topology`.
    pub fn for_tenant(&self, topology: &Topology, tenant_id: i64) -> Arc<Router> {
        let version = topology.routing_version(tenant_id);
        if let Ok(cache) = self.cache.lock()
            && let Some((built_at, router)) = cache.get(&tenant_id)
            && *built_at == version
        {
            return router.clone();
        }
        let router = Arc::new(build(topology, tenant_id));
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(tenant_id, (version, router.clone()));
        }
        router
    }
}

fn build(topology: &Topology, tenant_id: i64) -> Router {
    let exchanges: Vec<Exchange> = topology
        .exchanges
        .get(&tenant_id)
        .into_iter()
        .flat_map(|all| all.iter())
        .map(|x| Exchange {
            name: x.name.clone(),
            spec: x.spec.clone(),
        })
        .collect();
    let bindings: Vec<Binding> = topology
        .bindings
        .get(&tenant_id)
        .into_iter()
        .flat_map(|all| all.iter())
        .map(|b| Binding {
            id: b.id.clone(),
            spec: b.spec.clone(),
        })
        .collect();
    let queues = topology
        .tenant_queues(tenant_id)
        .map(|queue| queue.name.as_str());
    let router = Router::build(&exchanges, &bindings, queues);
    for issue in router.issues() {
        tracing::debug!(tenant = tenant_id, ?issue, "routing topology issue");
    }
    router
}
