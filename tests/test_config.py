"""Hydra configuration: every option composes and builds; typos and wrong types fail early."""

from __future__ import annotations

import sys
from importlib import resources
from typing import Any

import hydra
import pytest
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from pot_zk.backends.registry import BACKENDS
from pot_zk.config import build, compose_config
from pot_zk.exceptions import ConfigurationError
from pot_zk.proving.executors import usable_cores
from pot_zk.proving.policy import create_policy
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


def option_values(group: str, option: str) -> dict[str, Any]:
    """The values an option file sets, as written (interpolations unresolved)."""
    path = resources.files("pot_zk.conf") / group / f"{option}.yaml"
    return OmegaConf.to_container(OmegaConf.load(str(path)), resolve=False)


def is_global(group: str, option: str) -> bool:
    """Whether the option file sets global keys (``# @package _global_``, e.g. a prover and
    its backend's circuit settings)."""
    text = (resources.files("pot_zk.conf") / group / f"{option}.yaml").read_text()
    return "# @package _global_" in text.splitlines()[:1]


def expected_config(group: str, option: str) -> dict[str, dict[str, Any]]:
    """What choosing ``group=option`` puts into the composed config, by top-level key: the
    option's values under its group; for a global option (``@package _global_``: a mode preset,
    a prover), its global values and the whole of each group option it selects."""
    values = option_values(group, option)
    if not is_global(group, option):
        return {group: values}
    expected: dict[str, dict[str, Any]] = {}
    for entry in values.pop("defaults", []):
        for key, choice in entry.items():
            chosen = key.removeprefix("override /")
            expected.update(expected_config(chosen, choice))
    return {**expected, **values}


def what_build_made(group: str, runtime, plan, values: dict[str, Any]) -> tuple[Any, Any]:
    """(what the built runtime or training plan holds, what the option file says) for ``group``."""
    if group == "mode":
        return (runtime.mode, runtime.proving_enabled), (values["proving"]["mode"], values["proving"]["enabled"])
    if group == "prover" and "defaults" in values:  # a prover that selects an executor (groth16: process)
        chosen = {key.removeprefix("override /"): choice for entry in values["defaults"] for key, choice in entry.items()}
        made, wanted = what_build_made("prover", runtime, plan, {k: v for k, v in values.items() if k != "defaults"})
        executor = what_build_made("executor", runtime, plan, option_values("executor", chosen["executor"]))
        return (made, executor[0]), (wanted, executor[1])
    if group == "handler":
        return runtime.handler.name, values["name"]
    if group == "retry":
        schedule = runtime.schedule
        return (
            (schedule.max_attempts, schedule.initial_delay_s, schedule.multiplier, schedule.max_delay_s, schedule.jitter_s),
            (values["max_retries"] + 1, values["initial_delay_s"], values["multiplier"], values["max_delay_s"], values["jitter_s"]),
        )
    if group == "prover":
        resolved = OmegaConf.to_container(OmegaConf.create(values), resolve=True)
        prover = resolved["prover"]
        made = (runtime.strategy.name, runtime.strategy.binary, runtime.strategy.timeout_s, plan.spec.to_dict())
        # a null setting is the statement's own default (ezkl's param_scale: 20 for mse; groth16's
        # value_bits: 17 for the default digits classifier's labels)
        settings = {key: value if value is not None else getattr(plan.spec, f"default_{key}")() for key, value in resolved["circuit"].items()}
        return made, (BACKENDS.get(prover["backend"]).proof_type, prover["binary"], prover["timeout_s"], {**plan.spec.to_dict(), **settings})
    if group == "model":
        model = values.get("model", values)  # a global option (digits_mlp) also sets train
        made: tuple = (plan.spec.kind, list(plan.kind.mlp(plan.spec.architecture).dims), plan.kind.mlp(plan.spec.architecture).loss)
        wanted: tuple = (model["kind"], model["dims"], model.get("loss", "mse"))
        if model["kind"] == "lora":
            architecture = plan.spec.architecture
            made += (list(architecture.adapted), architecture.rank, architecture.alpha)
            wanted += (model["lora_layers"], model["lora_rank"], model["lora_alpha"])
        return made, wanted
    if group == "data":
        return plan.data.name, values["name"]
    if group == "policy":
        return plan.policy, create_policy(values["name"], **{k: v for k, v in values.items() if k != "name"})
    if group == "executor":
        return (plan.executor, plan.workers), (values["name"], values.get("workers") or usable_cores())
    if group == "logger":
        return plan.logger.name, values["name"]
    raise AssertionError(f"no check of what build makes of group {group!r}: add one")


REQUIRES: dict[tuple[str, str], tuple[str, ...]] = {}
"""Options that do not build with every default, and what they need."""


@pytest.mark.parametrize(("group", "option"), group_options())
def test_every_group_option_composes_into_its_values_and_builds_them(group, option, tmp_path):
    cfg = compose_config([f"{group}={option}", *REQUIRES.get((group, option), ()), f"run_dir={tmp_path}"])
    composed = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    for key, values in expected_config(group, option).items():
        differing = {name: (value, composed[key].get(name)) for name, value in values.items() if composed[key].get(name) != value}
        assert not differing, f"{group}={option}: {key} differs from the option file (file, composed): {differing}"
    runtime = build(cfg)
    assert runtime.run_dir == tmp_path
    made, wanted = what_build_made(group, runtime, runtime.plan, option_values(group, option))
    assert made == wanted, f"{group}={option}: built {made}, the option file says {wanted}"


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


def test_the_prover_program_comes_from_pot_zk_prover_when_set(tmp_path, monkeypatch):
    monkeypatch.delenv("POT_ZK_PROVER", raising=False)
    assert build(compose_config([f"run_dir={tmp_path}"])).strategy.binary == "pot-zk-groth16-prover"
    assert build(compose_config(["prover=ezkl", f"run_dir={tmp_path}"])).strategy.binary == "pot-zk-ezkl-prover"
    monkeypatch.setenv("POT_ZK_PROVER", "/opt/provers/my-prover")
    assert build(compose_config([f"run_dir={tmp_path}"])).strategy.binary == "/opt/provers/my-prover"
    assert build(compose_config(["prover=ezkl", f"run_dir={tmp_path}"])).strategy.binary == "/opt/provers/my-prover"
    assert build(compose_config(["prover.binary=other", f"run_dir={tmp_path}"])).strategy.binary == "other"


def test_command_line_overrides_win_over_the_mode_preset(tmp_path):
    runtime = build(compose_config(["mode=production", "handler=fallback", "retry.max_attempts=5", f"run_dir={tmp_path}"]))
    assert runtime.mode == "production"
    assert runtime.handler.name == "fallback"
    assert runtime.schedule.max_attempts == 5


def test_a_group_choice_on_the_command_line_wins_over_the_mode_choice(tmp_path):
    runtime = build(compose_config(["mode=research", "retry=aggressive", f"run_dir={tmp_path}"]))
    assert runtime.schedule.max_retries == 6


def test_build_makes_the_prover_a_program_strategy_and_chain_entries_lazy(tmp_path):
    runtime = build(compose_config(["prover=ezkl", "handler=fallback", "prover.timeout_s=12", "prover.search_paths=[/opt/provers]", f"run_dir={tmp_path}"]))
    assert runtime.strategy == ProgramStrategy(name="zk-halo2", binary="pot-zk-ezkl-prover", search_paths=("/opt/provers",), timeout_s=12.0)
    assert [s.name for s in runtime.handler.strategies] == ["freivalds", "reexec"]
    assert all(isinstance(s, LazyStrategy) for s in runtime.handler.strategies)


def test_park_dir_defaults_into_the_run_dir(tmp_path):
    runtime = build(compose_config(["handler=retry", f"run_dir={tmp_path}"]))
    assert runtime.handler.park_dir == tmp_path / "pending"


@pytest.mark.parametrize(("override", "message"), [
    ("retry.max_attemps=3", "unknown key retry.max_attemps (did you mean retry.max_attempts?)"),
    ("prover.binry=x", "unknown key prover.binry (did you mean prover.binary?)"),
    ("handler.park=/tmp", "unknown key handler.park (did you mean handler.park_dir?)"),
    ("proving.enabeld=false", "unknown key proving.enabeld (did you mean proving.enabled?)"),
    ("retry_policy=default", "unknown key retry_policy"),
    ("+train.max_step=6", "unknown key train.max_step (did you mean train.max_steps?)"),
    ("+seed=3", "unknown key seed"),
])
def test_a_typo_in_a_key_is_one_error_naming_it_and_the_nearest_key(override, message, tmp_path):
    """Also a ``+key`` the schema does not declare (Hydra adds it, nothing would read it)."""
    with pytest.raises(ConfigurationError) as caught:
        build(compose_config([override], run_dir=tmp_path))
    assert caught.value.message == message


@pytest.mark.parametrize(("override", "message"), [
    ("retry.max_retries=three", "retry.max_retries must be an integer, got 'three'"),
    ("prover.timeout_s=soon", "prover.timeout_s must be a float, got 'soon'"),
    ("proving.enabled=maybe", "proving.enabled=maybe: Value 'maybe' is not a valid bool (type str)"),
    ("prover.search_paths=notalist", "prover.search_paths=notalist: Invalid value assigned"),
])
def test_a_wrong_type_is_rejected_at_compose_time_naming_the_key(override, message):
    with pytest.raises(ConfigurationError) as caught:
        compose_config([override])
    assert caught.value.message.startswith(message)
    assert caught.value.key == override.split("=")[0]


@pytest.mark.parametrize(("overrides", "message"), [
    (["train.learning_rate=-1"], "train.learning_rate must be > 0, got -1"),
    (["train.batch_size=0"], "train.batch_size must be >= 1, got 0"),
    (["data.holdout=1.5"], "data.holdout must be in [0, 1), got 1.5"),
    (["optimizer.momentum=1"], "optimizer.momentum must be in [0, 1), got 1"),
    (["proving.mode=staging"],
     "proving.mode must be one of custom, development, research, production, disabled (the mode presets; choose one with mode=NAME), "
     "got 'staging'"),
    (["retry.multiplier=0.5", "executor.workers=0"],
     "2 configuration errors: executor.workers must be >= 1, got 0; retry.multiplier must be >= 1, got 0.5"),
    (["train.max_step=6", "train.learning_rate=-1", "handler=nope", "+lr=3"],
     "4 configuration errors: unknown key train.max_step (did you mean train.max_steps?); unknown handler 'nope'; valid: "
     "continue, fail_fast, fallback, retry; unknown key lr; train.learning_rate must be > 0, got -1"),
])
def test_every_configuration_error_is_found_in_one_pass_naming_key_and_value(overrides, message, tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        build(compose_config(overrides, run_dir=tmp_path))
    assert caught.value.message == message


@pytest.mark.parametrize(("override", "message"), [
    ("handler.name=contine", "unknown failure handler 'contine'; valid: continue, fail_fast, fallback, retry"),
    ("policy.name=every_other", "unknown proving policy 'every_other'; valid: every_k, every_step, sample"),
    ("executor.name=slurm", "unknown executor 'slurm'; valid: dask, inline, process"),
    ("data.name=mnist", "unknown data set 'mnist'; valid: digits, synthetic"),
    ("data.part=middle", "unknown data part 'middle'; valid: adapt, all, base"),
    ("model.kind=adam", "unknown model.kind 'adam'; valid: lora, sgd"),
    ("optimizer.name=rmsprop", "unknown optimizer.name 'rmsprop'; valid: sgd, adam, adamw"),
    ("prover.backend=halo3", "unknown prover backend 'halo3'; valid: ezkl, groth16"),
    ("handler.fallback_chain=[freivalds,reexc]", "unknown prover strategy 'reexc'; known: freivalds, reexec, zk-groth16, zk-halo2"),
])
def test_an_unknown_name_is_a_configuration_error_at_build_naming_the_valid_ones(override, message, tmp_path):
    """Names that select an implementation are looked up in its registry when the config is built."""
    cfg = compose_config([override, "handler=fallback" if "fallback_chain" in override else "handler=continue"], run_dir=tmp_path)
    with pytest.raises(ConfigurationError, match=message) as raised:
        build(cfg)
    assert raised.value.context["key"] in (override.split("=")[0], "reexc")


def test_a_typo_inside_a_new_option_file_is_rejected(tmp_path):
    (tmp_path / "prover").mkdir()
    (tmp_path / "prover" / "typo.yaml").write_text("backend: ezkl\nbinary: my-prover\ntimeout: 5\n")
    (tmp_path / "prover" / "fine.yaml").write_text("backend: ezkl\nbinary: my-prover\ntimeout_s: 5\n")
    searchpath = f"hydra.searchpath=[file://{tmp_path}]"
    assert build(compose_config([searchpath, "prover=fine", f"run_dir={tmp_path}"])).strategy.binary == "my-prover"
    with pytest.raises(ConfigurationError, match=r"^prover/typo.yaml: unknown key prover.timeout \(did you mean prover.timeout_s\?\)$"):
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


def test_executor_workers_default_to_the_usable_cores_and_refuse_less_than_one(tmp_path):
    import os

    plan = build(compose_config(["executor=process", f"run_dir={tmp_path}"])).plan
    assert plan.workers == len(os.sched_getaffinity(0))
    assert build(compose_config(["executor=process", "executor.workers=3", f"run_dir={tmp_path}"])).plan.workers == 3
    with pytest.raises(ConfigurationError, match="executor.workers must be >= 1, got 0") as caught:
        build(compose_config(["executor=process", "executor.workers=0", f"run_dir={tmp_path}"]))
    assert caught.value.context["key"] == "executor.workers"


def test_the_modes_verify_knows_are_the_mode_presets_and_custom():
    """verify fails a manifest mode outside MODES (unknown-mode): the list must follow conf/mode/."""
    from pathlib import Path

    from pot_zk.bundle.layout import MODES

    presets = {path.stem for path in (Path(__file__).parent.parent / "conf" / "mode").glob("*.yaml")}
    assert presets and set(MODES) == presets | {"custom"}
