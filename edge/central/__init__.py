"""Central side: what runs beside the broker, not on the node (``edge-anpr listen`` and its stores)."""
