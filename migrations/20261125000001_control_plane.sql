-- Control plane schema: tenants, their keys and quotas, the topology they
-- declare, the topology version feed and the audit log.

CREATE TABLE tenants (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    plan        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per tenant, filled from the plan's defaults at creation. The row is
-- also the lock that serialises a tenant's creates, so two concurrent creates
-- cannot both squeeze past a count limit.
CREATE TABLE tenant_quotas (
    tenant_id                   BIGINT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    max_queues                  BIGINT NOT NULL,
    max_exchanges               BIGINT NOT NULL,
    max_bindings                BIGINT NOT NULL,
    max_streams                 BIGINT NOT NULL,
    max_partitions              BIGINT NOT NULL,
    max_api_keys                BIGINT NOT NULL,
    max_message_bytes           BIGINT NOT NULL,
    publish_messages_per_second BIGINT NOT NULL,
    publish_bytes_per_second    BIGINT NOT NULL,
    max_storage_bytes           BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    tenant_id     BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    scopes        TEXT[] NOT NULL,
    -- SHA-256 of the secret: keys carry 238 bits of entropy, so a slow
    -- password hash would only cost latency on every request.
    secret_hash   BYTEA NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id);

CREATE TABLE exchanges (
    id                    BIGSERIAL PRIMARY KEY,
    tenant_id             BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                  TEXT NOT NULL,
    settings              JSONB NOT NULL,
    -- NO ACTION (not RESTRICT) so that deleting a whole tenant cascades in one statement.
    alternate_exchange_id BIGINT REFERENCES exchanges(id),
    version               BIGINT NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE queues (
    id                        BIGSERIAL PRIMARY KEY,
    tenant_id                 BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                      TEXT NOT NULL,
    settings                  JSONB NOT NULL,
    dead_letter_exchange_id   BIGINT REFERENCES exchanges(id),
    version                   BIGINT NOT NULL,
    created_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE bindings (
    -- Derived from what the binding matches, so re-declaring finds the same row.
    id                       TEXT NOT NULL,
    tenant_id                BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    source_exchange_id       BIGINT NOT NULL REFERENCES exchanges(id) ON DELETE CASCADE,
    destination_queue_id     BIGINT REFERENCES queues(id) ON DELETE CASCADE,
    destination_exchange_id  BIGINT REFERENCES exchanges(id) ON DELETE CASCADE,
    settings                 JSONB NOT NULL,
    version                  BIGINT NOT NULL,
    created_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK ((destination_queue_id IS NULL) <> (destination_exchange_id IS NULL))
);
CREATE INDEX bindings_source ON bindings (source_exchange_id);
CREATE INDEX bindings_destination_queue ON bindings (destination_queue_id);
CREATE INDEX bindings_destination_exchange ON bindings (destination_exchange_id);

CREATE TABLE streams (
    id          BIGSERIAL PRIMARY KEY,
    tenant_id   BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    partitions  BIGINT NOT NULL,
    settings    JSONB NOT NULL,
    version     BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

-- A single counter row. Every topology change takes its row lock to get the
-- next version, so versions become visible in commit order and a feed reader
-- that has seen version V never later discovers a smaller one.
CREATE TABLE topology_state (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    version   BIGINT NOT NULL
);
INSERT INTO topology_state (version) VALUES (0);

-- What changed at each version; no foreign key so deletions stay visible.
CREATE TABLE topology_events (
    version    BIGINT PRIMARY KEY,
    tenant_id  BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    action     TEXT NOT NULL,
    at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Kept after a tenant is deleted (tenant_name stays readable by operators).
CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    tenant_id   BIGINT,
    tenant_name TEXT,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    details     JSONB NOT NULL DEFAULT '{}'::jsonb,
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);

-- Ed25519 keys that sign the short-lived JWTs; the newest signs, all are published.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    private_der  BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
