"""The topic layout of the message contract: ``<prefix>/<site>/<camera>/<kind>``."""

from __future__ import annotations

from dataclasses import dataclass

from edge.config.model import MqttConfig, NodeConfig


@dataclass(frozen=True, slots=True)
class Topics:
    """All topics of one node. The broker's ACL confines a node to ``<prefix>/<site>/<camera>/#``."""

    prefix: str
    site: str
    camera: str

    @classmethod
    def for_node(cls, mqtt: MqttConfig, node: NodeConfig) -> Topics:
        return cls(mqtt.topic_prefix, node.site, node.camera)

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site}/{self.camera}"

    @property
    def reads(self) -> str:
        return f"{self.base}/reads"

    @property
    def status(self) -> str:
        """Retained ``online``/``offline`` (also the last will)."""
        return f"{self.base}/status"

    @property
    def health(self) -> str:
        """Retained latest health."""
        return f"{self.base}/health"

    @property
    def hotlist(self) -> str:
        """Inbound: the node subscribes here (later)."""
        return f"{self.base}/hotlist"

    def for_kind(self, kind: str) -> str | None:
        """The topic a message of ``kind`` ("read", "status", "health") goes to; None if unknown."""
        return {"read": self.reads, "status": self.status, "health": self.health}.get(kind)

    def owns(self, topic: str) -> bool:
        """True when ``topic`` is one of this node's outbound topics."""
        return topic in (self.reads, self.status, self.health)


def all_nodes(prefix: str, kind: str) -> str:
    """Subscription filter for one message kind from every node, e.g. ``anpr/+/+/reads``."""
    return f"{prefix}/+/+/{kind}"
