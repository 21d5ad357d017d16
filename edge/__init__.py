"""Edge ANPR node: capture -> detect -> read -> track -> privacy -> outbox -> publish.

Importing this package does nothing but define names: no hardware probes, no model loads.
"""

__version__ = "0.1.0"
