"""How the ``pot-zk`` command shows an error: one line, naming the command."""

from __future__ import annotations

from pot_zk.exceptions import ConfigurationError, PotZkError


def error_line(command: str, error: PotZkError) -> str:
    """``pot-zk train: train.learning_rate must be > 0, got -1``: one line (a configuration or
    usage error without its class, any other error with it)."""
    message = " ".join(error.message.split())
    return f"pot-zk {command}: {message}" if isinstance(error, ConfigurationError) else f"pot-zk {command}: {error.error_class}: {message}"
