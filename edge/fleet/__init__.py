"""The fleet control channel: what the centre and the node share about control messages and their signatures.

The centre (``edge/central/fleet.py``) signs and publishes; the node (``edge/node/fleet.py``) verifies and
applies. Both use only this package for the message format (``anpr.ctl/1``, :mod:`edge.fleet.manifest`), the
Ed25519 keys (:mod:`edge.fleet.signing`), the topics (:mod:`edge.fleet.topics`) and the payloads
(:mod:`edge.fleet.payload`).
"""
