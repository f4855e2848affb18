"""Tenants, API keys and scopes, connection and rate limits, and the audit trail.

The logic without I/O (keys, scopes, route policy, token buckets, refusal throttling, origin
checks) lives in small synchronous modules; ``middleware`` and ``service`` are the glue.
"""
