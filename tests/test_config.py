"""Hydra configuration: every option composes and builds; typos and wrong types fail early."""

from __future__ import annotations

import sys
from importlib import resources

import hydra
import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException

from pot_zk.config import build, compose_config
from pot_zk.exceptions import ConfigurationError
from pot_zk.proving.strategies import LazyStrategy, ProgramStrategy


def group_options() -> list[tuple[str, str]]:
    conf = resources.files("pot_zk.conf")
    return sorted(
        (group.name, option.name.removesuffix(".yaml"))
        for group in conf.iterdir() if group.is_dir() and not group.name.startswith("__")
        for option in group.iterdir() if option.name.endswith(".yaml")
    )


def test_the_config_tree_has_the_foundation_groups():
    groups = {group for group, _ in group_options()}
    assert {"mode", "prover", "retry", "handler"} <= groups


@pytest.mark.parametrize(("group", "option"), group_options())
def test_every_group_option_composes_and_builds(group, option, tmp_path):
    cfg = compose_config([f"{group}={option}", f"run_dir={tmp_path}"])
    runtime = build(cfg)
    assert runtime.run_dir == tmp_path
    assert runtime.schedule.max_attempts >= 1
    assert runtime.handler.name in {"fail_fast", "continue", "retry", "fallback"}


@pytest.mark.parametrize(("mode", "enabled", "handler", "retries"), [
    ("development", True, "continue", 3),
    ("production", True, "fail_fast", 0),
    ("research", True, "continue", 1),
    ("disabled", False, "continue", 0),
])
def test_mode_presets_reproduce_the_seed_table(mode, enabled, handler, retries, tmp_path):
    runtime = build(compose_config([f"mode={mode}", f"run_dir={tmp_path}"]))
    assert runtime.mode == mode
    assert runtime.proving_enabled is enabled
    assert runtime.handler.name == handler
    assert runtime.schedule.max_retries == retries
    assert runtime.schedule.max_attempts == retries + 1


def test_command_line_overrides_win_over_the_mode_preset(tmp_path):
    runtime = build(compose_config(["mode=production", "handler=fallback", "retry.max_attempts=5", f"run_dir={tmp_path}"]))
    assert runtime.mode == "production"
    assert runtime.handler.name == "fallback"
    assert runtime.schedule.max_attempts == 5


def test_a_group_choice_on_the_command_line_wins_over_the_mode_choice(tmp_path):
    runtime = build(compose_config(["mode=research", "retry=aggressive", f"run_dir={tmp_path}"]))
    assert runtime.schedule.max_retries == 6


def test_build_makes_the_prover_a_program_strategy_and_chain_entries_lazy(tmp_path):
    runtime = build(compose_config(["handler=fallback", "prover.timeout_s=12", "prover.search_paths=[/opt/provers]", f"run_dir={tmp_path}"]))
    assert runtime.strategy == ProgramStrategy(name="zk-halo2", binary="pot-zk-ezkl-prover", search_paths=("/opt/provers",), timeout_s=12.0)
    assert [s.name for s in runtime.handler.strategies] == ["freivalds", "reexec"]
    assert all(isinstance(s, LazyStrategy) for s in runtime.handler.strategies)


def test_park_dir_defaults_into_the_run_dir(tmp_path):
    runtime = build(compose_config(["handler=retry", f"run_dir={tmp_path}"]))
    assert runtime.handler.park_dir == tmp_path / "pending"


@pytest.mark.parametrize("override", [
    "retry.max_attemps=3",
    "prover.binry=x",
    "handler.park=/tmp",
    "proving.enabeld=false",
    "retry_policy=default",
])
def test_a_typo_in_a_key_is_rejected_at_compose_time(override):
    with pytest.raises(ConfigCompositionException):
        compose_config([override])


@pytest.mark.parametrize("override", [
    "retry.max_retries=three",
    "prover.timeout_s=soon",
    "proving.enabled=maybe",
    "handler.name=contine",
    "prover.search_paths=notalist",
])
def test_a_wrong_type_or_value_is_rejected_at_compose_time(override):
    with pytest.raises(ConfigCompositionException):
        compose_config([override])


def test_a_typo_inside_a_new_option_file_is_rejected(tmp_path):
    (tmp_path / "prover").mkdir()
    (tmp_path / "prover" / "typo.yaml").write_text("binary: my-prover\nproof_type: zk-halo2\ntimeout: 5\n")
    (tmp_path / "prover" / "fine.yaml").write_text("binary: my-prover\nproof_type: zk-halo2\ntimeout_s: 5\n")
    searchpath = f"hydra.searchpath=[file://{tmp_path}]"
    assert build(compose_config([searchpath, "prover=fine", f"run_dir={tmp_path}"])).strategy.binary == "my-prover"
    with pytest.raises(ConfigCompositionException):
        compose_config([searchpath, "prover=typo"])


@pytest.mark.parametrize("override, valid", [
    ("handler=retry_later", "continue, fail_fast, fallback, retry"),
    ("mode=explode", "development, disabled, production, research"),
])
def test_an_unknown_option_of_a_group_is_a_configuration_error_naming_the_valid_ones(override, valid):
    with pytest.raises(ConfigurationError, match=f"valid: {valid}$") as caught:
        compose_config([override])
    assert caught.value.key == override.split("=")[0]
    assert isinstance(caught.value.__cause__, MissingConfigException)


def test_compose_config_works_inside_a_running_hydra_app(tmp_path, monkeypatch):
    seen = {}

    @hydra.main(version_base="1.3", config_path="pkg://pot_zk.conf", config_name="show_config")
    def app(cfg):
        seen["outer"] = cfg.proving.mode
        seen["inner"] = build(compose_config(["mode=production", f"run_dir={tmp_path}"])).handler.name

    monkeypatch.setattr(sys, "argv", ["app", "mode=research"])
    app()
    assert seen == {"outer": "research", "inner": "fail_fast"}
