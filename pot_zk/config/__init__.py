"""Hydra configuration: schema (``schema``), composition and the typed boundary (``build``)."""

from pot_zk.config.build import Runtime, build, compose_config, resolved_container, retry_schedule
from pot_zk.config.schema import PotZkConfig

__all__ = ["PotZkConfig", "Runtime", "build", "compose_config", "resolved_container", "retry_schedule"]
