-- tradestore 0007: who changed which configuration value, when, from what to what.
-- Values of sensitive keys are stored encrypted here exactly as in system_config.
CREATE TABLE system_config_history (
    id BIGSERIAL PRIMARY KEY,
    key VARCHAR(100) NOT NULL,
    old_value JSONB,
    new_value JSONB,  -- NULL when the key was deleted
    data_type VARCHAR(20) NOT NULL,
    is_sensitive BOOLEAN NOT NULL,
    changed_by VARCHAR(100),
    changed_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_system_config_history_key ON system_config_history (key, changed_at DESC);
