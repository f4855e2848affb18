-- Looking events up by trace_id (the `trace_id` filter) without scanning a tenant's log; a
-- database created since 0001 had it added there already has it.
CREATE INDEX IF NOT EXISTS events_by_trace ON events (tenant, trace_id, seq);
