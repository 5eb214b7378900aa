"""MQTT on the module: client, session, outbox, publish forms, links."""
