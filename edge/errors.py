"""Errors a field engineer sees, each with its own exit code so systemd and scripts can tell them apart."""

from __future__ import annotations


class EdgeError(Exception):
    """Base of the node's expected errors: message is for a person, exit_code for the shell."""

    exit_code = 1


class ConfigError(EdgeError):
    exit_code = 2


class SourceError(EdgeError):
    """The camera or replay source is missing, unreadable or vanished."""

    exit_code = 3


class ModelError(EdgeError):
    """A model file is missing, has the wrong hash, or cannot be loaded."""

    exit_code = 4


class BrokerError(EdgeError):
    exit_code = 5


class StateError(EdgeError):
    """The state directory (outbox, audit log) cannot be written."""

    exit_code = 6
