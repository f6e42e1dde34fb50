"""``pot-zk verify RUN --challenge C.json``: every challenged step must carry a proof that
verified against its recorded commitments.

The auditor's C.json is checked against the bundle first: its commitment head must be the
bundle's (``challenge-head-mismatch``), its run id the manifest's (``challenge-run-mismatch``),
its counts consistent (``challenge-malformed``) and its steps the ones its head and nonce give
(``challenge-steps-mismatch``). Then against the auditor's trust store
(:mod:`pot_zk.verify.trust`): the auditor issued a challenge of this head, nonce and count
(``challenge-not-issued``: a C.json someone else made, e.g. the trainer with a nonce that
misses its altered steps), and it has a nonce unless the auditor allows none
(``challenge-no-nonce``; ``--allow-no-nonce``). Then each challenged step needs a final
``proved`` outcome (``challenge-unanswered``) whose proof the ``proofs`` check verified
(``challenge-proof-invalid``).
"""

from __future__ import annotations

from typing import Any

from pot_zk.backends.registry import PROOF_TYPES
from pot_zk.core.challenge import Challenge, challenge_problems
from pot_zk.verify.trust import TrustStore


def check_challenge(
    report, manifest: dict[str, Any], commitments: list[dict[str, Any]], proofs: list[dict[str, Any]], challenge: Challenge,
    trust: TrustStore, allow_no_nonce: bool = False,
) -> None:
    """Add the ``challenge`` check to ``report``; ``report.verified_steps`` must already hold
    the steps whose proofs verified."""
    failures_before = report.failures
    for reason, message in challenge_problems(challenge, manifest, commitments):
        report.fail("challenge", reason, message)
    if report.failures > failures_before:
        return
    issued = trust.issued(challenge)
    report.challenge = {
        "head": challenge.head, "nonce": challenge.nonce, "count": challenge.count, "total_steps": challenge.total_steps,
        "steps": list(challenge.steps), "issued_by_you": issued is not None and issued.get("count") == challenge.count,
    }
    if not report.challenge["issued_by_you"]:
        report.fail(
            "challenge", "challenge-not-issued",
            f"your trust store {trust.root} holds no challenge of this head, nonce and count (pot-zk challenge records the ones "
            "it issues): this C.json's steps were chosen by whoever made it",
        )
    if not challenge.nonce and not allow_no_nonce:
        report.fail(
            "challenge", "challenge-no-nonce",
            "the challenge has no nonce: its steps follow from the commitment head alone, which the trainer could re-randomise "
            "until no altered step is picked (grinding); pass --allow-no-nonce to accept it",
        )
    final = {record.get("step"): record for record in proofs}
    for step in challenge.steps:
        record = final.get(step)
        if record is None or record.get("status") != "proved":
            outcome = "no proof outcome" if record is None else f"its outcome is {record.get('status')!r}"
            report.fail("challenge", "challenge-unanswered", f"challenged step has no proof: {outcome}", step)
        elif step not in report.verified_steps:
            report.fail("challenge", "challenge-proof-invalid", "the challenged step's proof did not verify (see the proofs check)", step)
    revealed = [step for step in challenge.steps if (final.get(step) or {}).get("status") == "proved"
                and (final[step].get("proof_type") not in PROOF_TYPES or not PROOF_TYPES.get(final[step]["proof_type"]).zero_knowledge)]
    if revealed:  # sound (a certificate is checked), but not the zero-knowledge proof a challenge asks for
        report.notes.append(
            f"challenge: steps {revealed} were answered by certificates that reveal their witness "
            f"({sorted({final[step].get('proof_type') for step in revealed})}), not zero-knowledge proofs"
        )
    report.notes.append(
        f"challenge: {challenge.count} of {challenge.total_steps} steps {list(challenge.steps)}, "
        f"commitment head {challenge.head[:16]}..., nonce {challenge.nonce[:16] + '...' if challenge.nonce else 'none'}"
    )
    if not challenge.nonce and allow_no_nonce:
        report.notes.append(
            "the challenge has no auditor nonce (you allowed it): the steps follow from the commitment head alone, which the "
            "trainer could have re-randomised until no altered step was picked (docs/runs.md, grinding)"
        )
    if report.failures == failures_before:
        report.passed.append("challenge")
