//! The HTTP API: one module per resource, assembled here into one router
//! whose OpenAPI document utoipa generates from the handlers themselves.

pub mod api_keys;
pub mod audit;
pub mod bindings;
pub mod convergence;
pub mod exchanges;
pub mod health;
pub mod internal;
pub mod queues;
pub mod streams;
pub mod tenants;
pub mod tokens;

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::db::mutation::Actor;
use crate::error::{ApiResult, Problem};
use crate::model::api_key::Scope;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice control plane",
        description = "Tenants, API keys, quotas and topology (exchanges, queues, bindings, streams). \
                       Errors are RFC 7807 problem documents (`application/problem+json`) with a stable `type`.",
        version = "1.0.0"
    ),
    modifiers(&BearerAuth),
    components(schemas(Problem)),
    tags(
        (name = "tenants", description = "Operator: create, suspend and delete tenants; quotas"),
        (name = "api-keys", description = "A tenant's API keys (admin scope)"),
        (name = "exchanges"), (name = "queues"), (name = "bindings"), (name = "streams"),
        (name = "tokens", description = "Short-lived JWTs and the JWKS to verify them"),
        (name = "audit"), (name = "health"),
        (name = "topology", description = "Brokers and how far they have applied the topology"),
        (name = "internal", description = "Broker ↔ control plane: registration, heartbeats, the topology feed (node key)")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key `sk_<id>_<secret>`, the operator key, or a JWT from POST /v1/tokens"))
                    .build(),
            ),
        );
    }
}

/// The error responses every authenticated endpoint can give.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Problems {
    /// Invalid field: `field` names it, `rule` the rule it broke.
    #[response(status = 422, content_type = "application/problem+json")]
    Validation(Problem),
    /// Missing, unknown, revoked or expired credential.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Scope missing, tenant suspended, or a count quota reached.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such resource in the caller's tenant.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
}

/// The router and its OpenAPI document, built from the same route list.
pub fn router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(tenants::create_tenant, tenants::list_tenants))
        .routes(routes!(tenants::get_tenant, tenants::delete_tenant))
        .routes(routes!(tenants::suspend_tenant))
        .routes(routes!(tenants::resume_tenant))
        .routes(routes!(tenants::get_quotas, tenants::update_quotas))
        .routes(routes!(api_keys::create_api_key, api_keys::list_api_keys))
        .routes(routes!(api_keys::get_api_key, api_keys::revoke_api_key))
        .routes(routes!(exchanges::list_exchanges))
        .routes(routes!(
            exchanges::declare_exchange,
            exchanges::get_exchange,
            exchanges::delete_exchange
        ))
        .routes(routes!(queues::list_queues))
        .routes(routes!(
            queues::declare_queue,
            queues::get_queue,
            queues::delete_queue
        ))
        .routes(routes!(bindings::declare_binding, bindings::list_bindings))
        .routes(routes!(bindings::get_binding, bindings::delete_binding))
        .routes(routes!(streams::list_streams))
        .routes(routes!(
            streams::declare_stream,
            streams::get_stream,
            streams::delete_stream
        ))
        .routes(routes!(tokens::create_token))
        .routes(routes!(tokens::jwks))
        .routes(routes!(audit::list_audit_log))
        .routes(routes!(convergence::topology_status))
        .routes(routes!(convergence::list_nodes))
        .routes(routes!(internal::register_node))
        .routes(routes!(internal::heartbeat))
        .routes(routes!(internal::topology_feed))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .split_for_parts();
    let mut doc = doc;
    document_strict_settings(&mut doc);
    (router, doc)
}

/// The settings types shared with brokers ignore unknown fields (see
/// `extract::StrictJson`), so their derived schemas allow any; this API
/// refuses unknown fields in them, and says so.
fn document_strict_settings(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{AdditionalProperties, Schema};
    const STRICT: [&str; 5] = [
        "QueueSpec",
        "RetryBackoff",
        "ExchangeSpec",
        "BindingSpec",
        "StreamSpec",
    ];
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for name in STRICT {
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) {
            object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        }
    }
}

/// The generated document, as written to `openapi/control-plane.json`.
pub fn openapi_json() -> String {
    let (_, doc) = router();
    let mut json = doc.to_pretty_json().unwrap_or_default();
    json.push('\n');
    json
}

/// The caller as the actor of a tenant mutation needing `scope`.
pub fn tenant_actor(principal: &Principal, scope: Scope) -> ApiResult<Actor> {
    let key = principal.require(scope)?;
    Ok(Actor {
        tenant_id: key.tenant_id,
        tenant: key.tenant.clone(),
        name: principal.actor(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// The checked-in spec is what clients generate from; it must match the code.
    /// `SLUICE_UPDATE_OPENAPI=1 cargo test -p sluice-control openapi` rewrites it.
    #[test]
    fn openapi_document_has_not_drifted() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/control-plane.json");
        let generated = super::openapi_json();
        if std::env::var_os("SLUICE_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).expect("write openapi/control-plane.json");
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "openapi/control-plane.json differs from the generated document; \
             run `SLUICE_UPDATE_OPENAPI=1 cargo test -p sluice-control openapi` and commit it"
        );
    }

    /// The table that tells a caller of the wrong plane where a route lives
    /// lists exactly the routes of this plane's document.
    #[test]
    fn openapi_paths_are_the_route_table() {
        let checked =
            sluice_protocol::routes::Plane::Control.check_document(&super::openapi_json());
        assert_eq!(checked, Ok(()));
    }
}
