"""Typed configuration: one YAML file, validated once at start-up.

Each stage receives only its own section. Validators are pure (no I/O): file existence and
permissions are checked when the composition root opens the files, with their own errors.
"""

from edge.config.loader import load_config, parse_config
from edge.config.model import (
    CaptureConfig,
    Config,
    DetectConfig,
    HealthConfig,
    MqttConfig,
    NodeConfig,
    OutboxConfig,
    PrivacyConfig,
    ReadConfig,
    TlsConfig,
    TrackConfig,
)

__all__ = [
    "CaptureConfig",
    "Config",
    "DetectConfig",
    "HealthConfig",
    "MqttConfig",
    "NodeConfig",
    "OutboxConfig",
    "PrivacyConfig",
    "ReadConfig",
    "TlsConfig",
    "TrackConfig",
    "load_config",
    "parse_config",
]
