-- tradestore 0003: the transactional outbox of notification events.
-- A change (order created, trade closed, config changed, ...) and its event are written in
-- the same transaction; a relay moves committed events to Redis (stream + pub/sub) and marks
-- them published. A crash after commit or a Redis outage delays events, never loses them.
CREATE TABLE event_outbox (
    id BIGSERIAL PRIMARY KEY,
    event_type VARCHAR(50) NOT NULL,
    aggregate_id TEXT,
    payload JSONB NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    published_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT valid_event_type CHECK (event_type ~ '^[a-z]+(\.[a-z_]+)+$'),
    CONSTRAINT valid_payload CHECK (jsonb_typeof(payload) = 'object')
);

-- the relay's work queue: unpublished events in order
CREATE INDEX idx_event_outbox_unpublished ON event_outbox (id) WHERE published_at IS NULL;
CREATE INDEX idx_event_outbox_created ON event_outbox (created_at);

-- Wake the relay when events commit: one NOTIFY per inserting statement, delivered by
-- PostgreSQL only if the transaction commits (identical notifications are merged).
CREATE FUNCTION event_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tradestore_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER event_outbox_notify AFTER INSERT ON event_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION event_outbox_notify();
