"""``pot-zk show-config``: print the resolved configuration and what it builds into."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from pot_zk.config import schema
from pot_zk.config.build import build

schema.register_schema()


@hydra.main(version_base="1.3", config_path="pkg://pot_zk.conf", config_name="show_config")
def show_config(cfg: DictConfig) -> None:
    runtime = build(cfg)
    print(OmegaConf.to_yaml(cfg))
    print(f"# mode={runtime.mode} proving={'on' if runtime.proving_enabled else 'off'} "
          f"strategy={runtime.strategy.name} handler={runtime.handler.name} "
          f"attempts={runtime.schedule.max_attempts} (retries={runtime.schedule.max_retries})")
