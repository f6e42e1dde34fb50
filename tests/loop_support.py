"""What an auditor passes ``verify_run`` for a run of a loop of one's own: the references the
trainer hands over (the ``pot-zk verify`` command the run gives), agreed on before the check."""

from __future__ import annotations

import shlex
from typing import Any

FLAGS = {"--expect-head": "expect_head", "--expect-root": "expect_root", "--expect-initial": "expect_initial"}


def pins(command: str) -> dict[str, Any]:
    """verify_run's keywords from a ``pot-zk verify`` command line: the expected head, root and
    initial model, and the settings accepted (``--accept-setting KEY=VALUE``)."""
    words = shlex.split(command)
    found: dict[str, Any] = {FLAGS[word]: words[i + 1] for i, word in enumerate(words) if word in FLAGS}
    found["accept_settings"] = dict(words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "--accept-setting")
    return found


def run_pins(run_dir, *, head: bool = True) -> dict[str, Any]:
    """The pins of the run in ``run_dir`` as its trainer hands them over when it ends
    (:func:`pot_zk.runs.summary.verify_command`); ``head=False``: without the commitment head (a
    test of what a rewrite of the records trips besides it)."""
    from pot_zk.core.challenge import commitment_head
    from pot_zk.runs.bundle import RunBundle
    from pot_zk.runs.summary import verify_command

    bundle = RunBundle.open(run_dir)
    found = pins(verify_command(run_dir, commitment_head(bundle.manifest(), bundle.commitments()), bundle, declared=True))
    return found if head else {key: value for key, value in found.items() if key != "expect_head"}
