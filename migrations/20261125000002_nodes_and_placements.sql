-- Brokers (nodes) and where each Raft group (a queue, or one stream
-- partition) is placed among them.

CREATE TABLE nodes (
    id                 TEXT PRIMARY KEY,
    data_url           TEXT NOT NULL,
    zone               TEXT NOT NULL,
    registered_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_heartbeat_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The topology version the node has converged to.
    applied_version    BIGINT NOT NULL DEFAULT 0
);

-- One row per Raft group. `replicas` lists node ids, preferred leader first;
-- empty while no node is available (placed when one registers).
CREATE TABLE placements (
    group_id    TEXT PRIMARY KEY,
    tenant_id   BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    queue_id    BIGINT REFERENCES queues(id) ON DELETE CASCADE,
    stream_id   BIGINT REFERENCES streams(id) ON DELETE CASCADE,
    partition   INT,
    replication_factor INT NOT NULL,
    replicas    TEXT[] NOT NULL,
    CHECK ((queue_id IS NULL) <> (stream_id IS NULL))
);
CREATE INDEX placements_queue ON placements (queue_id);
CREATE INDEX placements_stream ON placements (stream_id);

-- Feed readers wake on this channel instead of polling.
CREATE FUNCTION notify_topology() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('sluice_topology', NEW.version::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER topology_state_notify AFTER UPDATE ON topology_state
    FOR EACH ROW EXECUTE FUNCTION notify_topology();
