-- What a broker can host, and how much it hosts: placement reads both per
-- declare, so they are columns rather than a count over every placement.

-- The most group replicas the broker says it can host (NULL: it states no limit),
-- the free bytes on its data disk at its last heartbeat (NULL: not reported) and
-- the free bytes it keeps in reserve: placement skips a node at either limit.
ALTER TABLE nodes ADD COLUMN max_groups BIGINT;
ALTER TABLE nodes ADD COLUMN disk_free_bytes BIGINT;
ALTER TABLE nodes ADD COLUMN disk_reserve_bytes BIGINT NOT NULL DEFAULT 0;

-- Group replicas placed on the node, kept by the trigger below. Every change to
-- placements takes the topology version row first (see db/mutation.rs), so the
-- node rows this locks are always locked in the same order.
ALTER TABLE nodes ADD COLUMN hosted_groups BIGINT NOT NULL DEFAULT 0;
UPDATE nodes n SET hosted_groups = (SELECT count(*) FROM placements p WHERE n.id = ANY(p.replicas));

CREATE FUNCTION count_hosted_groups() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE nodes SET hosted_groups = hosted_groups - 1 WHERE id = ANY(OLD.replicas);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        UPDATE nodes SET hosted_groups = hosted_groups + 1 WHERE id = ANY(NEW.replicas);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER placements_hosted_groups AFTER INSERT OR DELETE OR UPDATE OF replicas ON placements
    FOR EACH ROW EXECUTE FUNCTION count_hosted_groups();
