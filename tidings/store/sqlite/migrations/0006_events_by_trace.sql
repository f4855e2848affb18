-- Looking events up by trace_id (the `trace_id` filter) without scanning a tenant's log.
CREATE INDEX IF NOT EXISTS events_by_trace ON events (tenant, trace_id, seq);
