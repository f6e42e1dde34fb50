"""The declared statement is the one the auditor means: its id is its own, and every setting
the auditor did not name is the statement's default.

A circuit spec has the hyper-parameters of the training it states (architecture, batch size,
learning rate, LoRA rank and alpha) and settings with defaults (fixed-point scales, ranges,
decomposition, tolerance). The trainer writes the manifest, so a setting it changed quietly
changes what a proof shows: ``param_scale=1`` rounds the step constant c to 0 and the circuit
then checks W_t+1 = W_t, which is no training at all. verify therefore fails every setting
that differs from the spec class's default unless the auditor accepts that value
(``--accept-setting KEY=VALUE``); the tolerance has its own bound (``--max-tolerance-ulps``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

from pot_zk.bundle.layout import MODES
from pot_zk.verify.canonical import same_json
from pot_zk.exceptions import ConfigurationError

TOLERANCE = "tolerance_ulps"
"""Bounded by check_tolerance (a lower tolerance is stricter, so it is no finding here)."""
ACCEPT_SETTING = "accept_setting"
"""The key of a ConfigurationError about the auditor's own ``--accept-setting`` (bad input, exit 2)."""
PLAN_SETTINGS: dict[str, tuple[str, ...] | type] = {
    "batch_order": ("recorded",), "data": ("undeclared", "unopened"), "holdout_seed": int, "holdout_fraction": float,
}
"""Settings of the training plan the auditor may accept other than their default (``seeded``
batches, declared data, the held-out set chosen with seed 0 and fraction 0.2): the values it
may accept, or their type (checked by :func:`pot_zk.verify.run_checks.check_steps`,
:mod:`pot_zk.verify.samples` and :func:`pot_zk.verify.holdout.check_holdout`)."""


def parse_accepted(pairs: list[str] | None) -> dict[str, str]:
    """``["param_scale=16", ...]`` -> ``{"param_scale": "16"}``; a malformed pair is refused."""
    accepted: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigurationError(f"--accept-setting takes KEY=VALUE, not {pair!r}", key=ACCEPT_SETTING)
        accepted[key.strip()] = value.strip()
    return accepted


def default_settings(spec: Any) -> dict[str, Any]:
    """The spec's settings that have a default, with that default. A field whose default is
    None takes the spec's own ``default_<name>()`` when it has one (ezkl's ``param_scale``: 20
    for mse, ``scale`` for cross_entropy). A field marked ``metadata={"setting": False}`` is a
    hyper-parameter of the training (zk-groth16's ``loss``), shown in the spec, not a setting."""
    defaults = {}
    for field in dataclasses.fields(spec):
        if field.default is dataclasses.MISSING or field.name == TOLERANCE or field.metadata.get("setting") is False:
            continue
        resolve = getattr(spec, f"default_{field.name}", None)
        defaults[field.name] = resolve() if field.default is None and resolve is not None else field.default
    return defaults


def check_statement(report, manifest: Mapping[str, Any], spec: Any, accepted: Mapping[str, str]) -> None:
    """``statement-not-canonical``: the manifest's circuit spec is not exactly the spec verify
    parsed from it (a field the statement does not have -- ``nesterov: true``, a note -- would be
    printed as if verified, and the proofs ignore it). ``circuit-id-mismatch``: the manifest's
    circuit id is not the id of its own spec (keys, challenges and the commitment head are bound
    to that id). ``unknown-mode``: the declared mode is none of :data:`~pot_zk.bundle.layout.MODES`.
    ``setting-not-default``: a setting differs from the statement's default and the
    auditor did not accept its value."""
    ok = True
    if manifest.get("mode") not in MODES:  # a review: "production" with a zero-width space was shown as production and took dev keys
        ok = False
        report.fail("statement", "unknown-mode", f"the run declares mode {manifest.get('mode')!r}, none of {', '.join(MODES)}")
    canonical = json.loads(json.dumps(spec.to_dict()))
    if not same_json(manifest.get("circuit"), canonical):  # review36: == took a scale of 12.0 for 12
        ok = False
        report.fail(
            "statement",
            "statement-not-canonical",
            f"the manifest's circuit spec {manifest.get('circuit')} is not the statement verify reads from it ({canonical}): "
            "what differs is not part of what the proofs show",
        )
    if manifest.get("circuit_id") != spec.circuit_id():
        ok = False
        report.fail(
            "statement",
            "circuit-id-mismatch",
            f"the manifest's circuit_id {manifest.get('circuit_id')!r} is not the id of its circuit spec ({spec.circuit_id()})",
        )
    defaults = default_settings(spec)
    unknown = sorted(set(accepted) - set(defaults) - set(PLAN_SETTINGS))
    if unknown:
        raise ConfigurationError(
            f"--accept-setting names {unknown}, not settings of the {spec.kind} statement {sorted(defaults)} or of the plan {sorted(PLAN_SETTINGS)}",
            key=ACCEPT_SETTING,
        )
    for name, values in PLAN_SETTINGS.items():
        if name not in accepted:
            continue
        if isinstance(values, type):
            try:
                values(accepted[name])
            except ValueError:
                raise ConfigurationError(f"--accept-setting {name}= takes {'an integer' if values is int else 'a number'}, not {accepted[name]!r}", key=ACCEPT_SETTING) from None
        elif accepted[name] not in values:
            raise ConfigurationError(f"--accept-setting {name}= takes {', '.join(values)}, not {accepted[name]!r}", key=ACCEPT_SETTING)
    for name, default in sorted(defaults.items()):
        value = getattr(spec, name)
        if value == default or (name in accepted and str(value) == accepted[name]):
            continue
        ok = False
        wanted = f"you accepted {accepted[name]}" if name in accepted else f"the statement's default is {default!r}"
        report.fail(
            "statement",
            "setting-not-default",
            f"the manifest sets {name}={value!r}; {wanted} (accept it with --accept-setting {name}={value})",
        )
    if ok:
        report.passed.append("statement-settings")
