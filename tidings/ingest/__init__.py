"""Inbound adapters: signed webhooks, SmartThings, MQTT and PG NOTIFY, and dead letters.

``tidings.ingest.manager.IngestManager`` assembles them; the modules without I/O (signatures,
mapping, topics, config) can be used on their own.
"""
