-- What each tenant holds, kept by triggers on the tables that hold it, so a
-- declare checks its quota against counters instead of counting the
-- tenant's resources (which made each declare slower the more the tenant
-- had). Every change to these tables runs under the tenant's quota row lock
-- (db/mutation.rs), so the counters are exact and add no contention.
CREATE TABLE tenant_usage (
    tenant_id   BIGINT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    queues      BIGINT NOT NULL DEFAULT 0,
    exchanges   BIGINT NOT NULL DEFAULT 0,
    bindings    BIGINT NOT NULL DEFAULT 0,
    streams     BIGINT NOT NULL DEFAULT 0,
    partitions  BIGINT NOT NULL DEFAULT 0
);

INSERT INTO tenant_usage (tenant_id, queues, exchanges, bindings, streams, partitions)
SELECT t.id,
       (SELECT count(*) FROM queues q WHERE q.tenant_id = t.id),
       (SELECT count(*) FROM exchanges x WHERE x.tenant_id = t.id),
       (SELECT count(*) FROM bindings b WHERE b.tenant_id = t.id),
       (SELECT count(*) FROM streams s WHERE s.tenant_id = t.id),
       (SELECT coalesce(sum(s.partitions), 0) FROM streams s WHERE s.tenant_id = t.id)
FROM tenants t;

CREATE FUNCTION start_tenant_usage() RETURNS trigger AS $$
BEGIN
    INSERT INTO tenant_usage (tenant_id) VALUES (NEW.id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER tenants_usage AFTER INSERT ON tenants
    FOR EACH ROW EXECUTE FUNCTION start_tenant_usage();

CREATE FUNCTION count_tenant_usage() RETURNS trigger AS $$
DECLARE
    tenant BIGINT;
    delta BIGINT;
    parts BIGINT := 0;
BEGIN
    IF TG_OP = 'INSERT' THEN
        tenant := NEW.tenant_id;
        delta := 1;
        IF TG_TABLE_NAME = 'streams' THEN
            parts := NEW.partitions;
        END IF;
    ELSE
        tenant := OLD.tenant_id;
        delta := -1;
        IF TG_TABLE_NAME = 'streams' THEN
            parts := -OLD.partitions;
        END IF;
    END IF;
    IF TG_TABLE_NAME = 'queues' THEN
        UPDATE tenant_usage SET queues = queues + delta WHERE tenant_id = tenant;
    ELSIF TG_TABLE_NAME = 'exchanges' THEN
        UPDATE tenant_usage SET exchanges = exchanges + delta WHERE tenant_id = tenant;
    ELSIF TG_TABLE_NAME = 'bindings' THEN
        UPDATE tenant_usage SET bindings = bindings + delta WHERE tenant_id = tenant;
    ELSIF TG_TABLE_NAME = 'streams' THEN
        UPDATE tenant_usage SET streams = streams + delta, partitions = partitions + parts
        WHERE tenant_id = tenant;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER queues_usage AFTER INSERT OR DELETE ON queues
    FOR EACH ROW EXECUTE FUNCTION count_tenant_usage();
CREATE TRIGGER exchanges_usage AFTER INSERT OR DELETE ON exchanges
    FOR EACH ROW EXECUTE FUNCTION count_tenant_usage();
CREATE TRIGGER bindings_usage AFTER INSERT OR DELETE ON bindings
    FOR EACH ROW EXECUTE FUNCTION count_tenant_usage();
CREATE TRIGGER streams_usage AFTER INSERT OR DELETE ON streams
    FOR EACH ROW EXECUTE FUNCTION count_tenant_usage();
