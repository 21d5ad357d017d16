"""Publish: hand messages from the outbox to the central MQTT broker."""

from __future__ import annotations

from typing import Protocol

from edge.domain import OutgoingMessage


class Sink(Protocol):
    """Sends one message; returns True once the receiver has acknowledged it."""

    def send(self, message: OutgoingMessage) -> bool: ...
