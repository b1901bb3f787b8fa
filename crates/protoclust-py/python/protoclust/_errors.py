"""The exceptions protoclust raises; every message is the command line's one-line error."""

from ._native import CheckpointError, ConfigError, DataError, ProtoclustError

__all__ = ["CheckpointError", "ConfigError", "DataError", "ProtoclustError"]
