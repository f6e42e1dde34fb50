"""``pot-zk verify`` on a scheduled run: each step's learning rate recomputed from the declared
schedule (:mod:`pot_zk.kinds.schedule`), never taken from the records.

A scheduled run declares ``training.schedule`` in its manifest (the commitment head covers it)
and a statement whose rate is public (``"rate": "public"``: each proof takes the step's update
constant as a public input, up to the statement's ``learning_rate``, which is the schedule's
base rate). verify names the schedule in its references, recomputes every step's rate with
torch's own scheduler from the base rate, and requires each record's ``learning_rate`` to be it
(``learning-rate-mismatch``); the proofs are then checked with the recomputed rates. A step whose
recomputed rate rounds to the update constant 0 trains nothing, whatever its proof says
(``zero-rate``: a schedule could otherwise skip the batches the trainer chose). A schedule
without a public rate, or a public rate without a schedule, is ``schedule-mismatch``: the first
could not be proven, the second would let any rate up to the bound pass.
"""

from __future__ import annotations

from typing import Any, Mapping

from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.schedule import Schedule, canonical


def check_schedule(report, manifest: Mapping[str, Any], spec: Any, by_step: Mapping[int, Mapping[str, Any]]) -> dict[int, float]:
    """The learning rate of each recorded step as the declaration gives it (empty for a run
    without a schedule, whose statement fixes the rate); findings for what does not agree."""
    declared = (manifest.get("training") or {}).get("schedule")
    public = bool(getattr(spec, "rate_public", False))
    if declared is None:
        if public:
            report.fail("statement", "schedule-mismatch", "the statement takes each step's learning rate as a public value, but the run declares no schedule")
        wrong = [step for step, record in sorted(by_step.items()) if record.get("learning_rate") not in (None, spec.learning_rate)]
        for step in wrong:
            report.fail("steps", "learning-rate-mismatch", f"the step records learning rate {by_step[step].get('learning_rate')}, the statement's is {spec.learning_rate}", step)
        return {}
    try:
        schedule = Schedule(canonical(declared, "training.schedule"), spec.learning_rate)
    except ConfigurationError as exc:
        report.fail("statement", "schedule-mismatch", f"the declared schedule cannot be recomputed: {exc.message}")
        return {}
    report.references["schedule"] = f"{schedule.describe()}, each step's rate recomputed"
    if not public:
        report.fail("statement", "schedule-mismatch", f"the run declares {schedule.describe()} but its statement fixes the learning rate at {spec.learning_rate}")
        return {}
    # the rates of steps 0..n-1 for n records: a step numbered past them has none (the steps check fails it; review47: a
    # record numbered 3*10**7 stepped torch's scheduler that often, 569 s and 3.9 GB)
    steps = [step for step in by_step if isinstance(step, int) and not isinstance(step, bool) and 0 <= step < len(by_step)]
    rates = dict(enumerate(schedule.rates(max(steps) + 1))) if steps else {}
    wrong = [step for step in sorted(steps) if by_step[step].get("learning_rate") != rates[step]]
    for step in wrong:
        report.fail(
            "steps", "learning-rate-mismatch",
            f"the step records learning rate {by_step[step].get('learning_rate')}, the declared schedule gives {rates[step]!r}", step,
        )
    constant = getattr(spec, "rate_constant", None)
    idle = [step for step in sorted(steps) if constant is not None and constant(rates[step]) == 0]
    for step in idle:
        report.fail(
            "steps", "zero-rate",
            f"the declared schedule's rate at this step, {rates[step]!r}, rounds to the update constant 0: the step trains nothing "
            "(its batch is committed but not learned from)", step,
        )
    if rates:
        lowest, highest = min(rates.values()), max(rates.values())
        span = f"{lowest:.3g} at every step" if lowest == highest else f"from {lowest:.3g} to {highest:.3g}"
        report.references["schedule"] += f": {span}"  # review47: LinearLR(start_factor=0.011, total_iters=0) reads as a warm-up; it stays at 1.1 %
        low = min(rates, key=lambda step: rates[step])
        if rates[low] < spec.learning_rate / 100:  # the trainer's declaration, unless the auditor's keys pin it: say how low it goes
            report.notes.append(
                f"schedule: the declared rate falls to {rates[low]:.3g} at step {low}, under 1 % of its base {spec.learning_rate:g}: "
                "at such a rate the update's floor can outweigh the rate (where its update is under a grid step, a weight whose gradient "
                "is negative moves up one grid step and the others stay); pin the schedule you agreed on with your own keys (--keys)"
            )
    if not wrong and not idle:
        report.passed.append("schedule")
    return rates
