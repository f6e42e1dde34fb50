"""The ``logger`` config group: choosing ``tensorboard`` without its package is refused in one
line naming the install, before anything is written."""

from __future__ import annotations

import sys

import pytest

from pot_zk.config import compose_config
from pot_zk.exceptions import ConfigurationError
from pot_zk.runs.train import train


def test_logger_tensorboard_without_the_package_is_one_line_naming_the_extra_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    run = tmp_path / "run"
    cfg = compose_config(["model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=2", "logger=tensorboard",
                          f"run_dir={run}", f"cache_dir={tmp_path / 'cache'}", "train.progress=false"])
    with pytest.raises(ConfigurationError) as caught:
        train(cfg)
    assert str(caught.value) == "logger=tensorboard needs the tensorboard package, which is not installed: pip install 'pot-zk[tensorboard]'"
    assert caught.value.key == "logger.name"
    assert not run.exists()
