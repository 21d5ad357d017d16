"""Outbox: every message that may leave the node is stored durably here before MQTT sees it."""
