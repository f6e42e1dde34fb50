"""Hydra configuration: schema (``schema``), composition and the typed boundary (``build``)."""

from pot_zk.config.build import Runtime, build, compose_config, retry_schedule
from pot_zk.config.plan import DataSettings, TrainingPlan
from pot_zk.config.schema import PotZkConfig

__all__ = ["DataSettings", "PotZkConfig", "Runtime", "TrainingPlan", "build", "compose_config", "retry_schedule"]
