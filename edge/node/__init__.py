"""The node's operating side: systemd service, health telemetry, clock checks, sequence numbers,
self-test, provisioning and aiming. The pipeline itself lives in the stage folders beside this one."""
