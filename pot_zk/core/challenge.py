"""Challenges after the fact: which committed steps an auditor asks a trainer to prove.

The **commitment head** of a run is a SHA-256 hash chain over what the run committed to::

    h_0     = SHA-256("pot-zk/commitment-head/v2" || canonical(declared_plan(manifest)))
    h_{t+1} = SHA-256(h_t || canonical({"step", "batch_index", "w_before", "batch", "w_after", "base", "scale"}
                                        + the optimizer state fields the record has))

(``canonical``: JSON, sorted keys, no spaces; the optimizer state fields, :data:`STATE_FIELDS`,
are the velocity of a momentum step and the moments and step count of an Adam step: committed
state like the weights, which verify requires in every record of such a run, so a challenge
drawn from the head fixes it too; so are the sample positions a streamed step records and a
scheduled step's learning rate, when it records them.) :func:`declared_plan` is the statement (its circuit id),
the declared data set (name, part, number of batches, a synthetic set's sample count and seed,
the held-out set, the root; a streamed run's sample count and leaf), the training plan (batch order, seed, epochs, max_steps, optimizer,
arithmetic), the policy, whether proving was on, the mode and a LoRA run's base commitment:
everything in the manifest the verdict depends on, so nothing of it can change after the head
was handed over. It covers only values ``pot-zk verify`` checks, never free fields such as the
loss, timestamps or versions, and verify accepts one form of each value hashed here
(:mod:`pot_zk.verify.canonical`: a review drew new heads from ``"scale": 12.0`` for ``12`` and
from keys added to the plan). A trainer can still change the head by re-declaring a value verify
checks only by its effect (``epochs`` past ``max_steps`` or the reverse, a policy selecting the same
steps, the mode, proving declared off; docs/runs.md, "Grinding"): a challenge needs the auditor's nonce. It does not change when proofs are added later (unlike the
audit trail's last record hash, which every later record moves).

The challenged steps are ``count`` distinct steps of ``0..total_steps-1`` drawn by a partial
Fisher-Yates shuffle whose randomness is the stream ``SHA-256(seed || i)`` (i a big-endian
u64 counter; 8-byte draws, rejection-sampled to be uniform), with
``seed = SHA-256("pot-zk/challenge/v1" || head || nonce)``. The nonce is the auditor's, chosen
after the run is submitted; without one the choice is a post-hoc Fiat-Shamir of the head alone,
which a cheater can grind (docs/runs.md).
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from pot_zk.exceptions import ChallengeError

CHALLENGE_FORMAT = "pot-zk-challenge/1"
HEAD_DOMAIN = b"pot-zk/commitment-head/v2"
CHALLENGE_DOMAIN = b"pot-zk/challenge/v1"
HEAD_FIELDS = ("step", "batch_index", "w_before", "batch", "w_after", "base", "scale")
STATE_FIELDS = ("v_before", "v_after", "m_before", "m_after", "t_before", "t_after", "samples", "learning_rate")
"""Recorded besides the weights (a momentum step's velocity, an Adam step's moments and step
count; the positions of a streamed batch's samples in the declared data set; a scheduled step's
learning rate, which verify recomputes): in the head when recorded."""
NONCE_BYTES = 32


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


DATASET_FIELDS = ("name", "part", "num_batches", "num_samples", "seed", "root", "holdout")
STREAMED_FIELDS = ("size", "leaf")
"""A streamed run's data set also declares its sample count, which bounds the positions its steps
name, and how a sample leaf is formed (review38: ``size`` was read by verify but not hashed)."""


def declared_plan(manifest: Mapping[str, Any], *, streamed_fields: bool = True) -> dict[str, Any]:
    """What a run's manifest declares that the verdict depends on (the head's first link);
    ``streamed_fields=False``: without a streamed run's :data:`STREAMED_FIELDS`, as heads were
    computed before they were added (verify names such a pinned head, never accepts it)."""
    dataset = manifest["dataset"]
    return {
        "circuit_id": manifest.get("circuit_id"),
        "dataset": {key: dataset.get(key) for key in (*DATASET_FIELDS, *(STREAMED_FIELDS if streamed_fields and "size" in dataset else ()))},
        "training": manifest.get("training"),
        "policy": manifest.get("policy"),
        "proving_enabled": manifest.get("proving_enabled"),
        "mode": manifest.get("mode"),
        "base": (manifest.get("base") or {}).get("commitment"),
    }


def commitment_head(manifest: Mapping[str, Any], commitments: Sequence[Mapping[str, Any]], *, streamed_fields: bool = True) -> str:
    """The commitment head (hex) of a run's manifest and commitment records, in step order
    (``streamed_fields``: :func:`declared_plan`)."""
    head = hashlib.sha256(HEAD_DOMAIN + _canonical(declared_plan(manifest, streamed_fields=streamed_fields))).digest()
    for record in sorted(commitments, key=_step_order):
        fields = {key: record.get(key) for key in HEAD_FIELDS} | {key: record[key] for key in STATE_FIELDS if key in record}
        head = hashlib.sha256(head + _canonical(fields)).digest()
    return head.hex()


def _step_order(record: Mapping[str, Any]) -> tuple[int, int, str]:
    """Integer steps in order, then anything else a damaged bundle holds (reported by verify)."""
    step = record.get("step")
    return (0, step, "") if isinstance(step, int) and not isinstance(step, bool) else (1, 0, repr(step))


def run_id(manifest: Mapping[str, Any]) -> str:
    """Names a run by its statement: SHA-256 of the canonical manifest."""
    return hashlib.sha256(_canonical(dict(manifest))).hexdigest()


def _stream(seed: bytes) -> Iterator[int]:
    counter = 0
    while True:
        block = hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
        for offset in range(0, 32, 8):
            yield int.from_bytes(block[offset : offset + 8], "big")


def _below(stream: Iterator[int], bound: int) -> int:
    """A uniform integer in [0, bound) from 64-bit draws (rejection sampling)."""
    limit = (1 << 64) - (1 << 64) % bound
    while True:
        value = next(stream)
        if value < limit:
            return value % bound


def choose_steps(head: str, nonce: str, count: int, total_steps: int) -> tuple[int, ...]:
    """``count`` distinct steps of ``0..total_steps-1``, sorted, fixed by ``head`` and ``nonce``."""
    if not 1 <= count <= total_steps:
        raise ChallengeError(
            f"a challenge needs 1 <= count <= {total_steps} (the run's steps), got {count}",
            reason="challenge-malformed",
            count=count,
            total_steps=total_steps,
        )
    stream = _stream(hashlib.sha256(CHALLENGE_DOMAIN + bytes.fromhex(head) + bytes.fromhex(nonce)).digest())
    pool = list(range(total_steps))
    for i in range(count):
        j = i + _below(stream, total_steps - i)
        pool[i], pool[j] = pool[j], pool[i]
    return tuple(sorted(pool[:count]))


def detection_probability(total_steps: int, altered: int, count: int) -> float:
    """Chance that ``count`` distinct uniformly chosen steps of ``total_steps`` include at least
    one of ``altered`` steps: ``1 - C(T-c, Q) / C(T, Q)``."""
    return 1.0 - math.comb(total_steps - altered, count) / math.comb(total_steps, count)


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


@dataclass(frozen=True)
class Challenge:
    """What an auditor asked of one run (the content of C.json)."""

    run_id: str
    head: str
    nonce: str
    """Hex; empty when the auditor used none (post-hoc Fiat-Shamir, grindable)."""
    count: int
    total_steps: int
    steps: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CHALLENGE_FORMAT,
            "run_id": self.run_id,
            "head": self.head,
            "nonce": self.nonce,
            "count": self.count,
            "total_steps": self.total_steps,
            "steps": list(self.steps),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Challenge":
        if not isinstance(data, Mapping) or data.get("format") != CHALLENGE_FORMAT:
            raise ChallengeError(f"not a {CHALLENGE_FORMAT} challenge file", reason="challenge-malformed")
        try:
            challenge = cls(
                run_id=str(data["run_id"]),
                head=str(data["head"]),
                nonce=str(data["nonce"]),
                count=int(data["count"]),
                total_steps=int(data["total_steps"]),
                steps=tuple(int(s) for s in data["steps"]),
            )
            bytes.fromhex(challenge.head)
            bytes.fromhex(challenge.nonce)
        except (KeyError, TypeError, ValueError) as exc:
            raise ChallengeError(f"malformed challenge file: {exc}", reason="challenge-malformed") from exc
        return challenge

    @classmethod
    def load(cls, path: Path) -> "Challenge":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ChallengeError(f"cannot read challenge file {path}: {exc}", reason="challenge-malformed", path=str(path)) from exc
        return cls.from_dict(data)


def new_challenge(manifest: Mapping[str, Any], commitments: Sequence[Mapping[str, Any]], count: int, nonce: str) -> Challenge:
    """The auditor's challenge of ``count`` steps of a run, with ``nonce`` (hex, may be empty)."""
    try:
        bytes.fromhex(nonce)
    except ValueError as exc:
        raise ChallengeError(f"the nonce must be hex: {exc}", reason="challenge-malformed") from exc
    head = commitment_head(manifest, commitments)
    total = len(commitments)
    return Challenge(run_id(manifest), head, nonce.lower(), count, total, choose_steps(head, nonce, count, total))


def challenge_problems(challenge: Challenge, manifest: Mapping[str, Any], commitments: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Why ``challenge`` does not apply to this run, as ``(reason, message)``; empty if it does."""
    head = commitment_head(manifest, commitments)
    if challenge.head != head:
        return [("challenge-head-mismatch", f"the challenge's commitment head {challenge.head[:16]}... is not this bundle's {head[:16]}...")]
    if challenge.run_id != run_id(manifest):
        return [("challenge-run-mismatch", "the challenge names another run id than this manifest's (same commitments, other statement file)")]
    if challenge.total_steps != len(commitments) or challenge.count != len(challenge.steps):
        return [("challenge-malformed", f"the challenge counts {challenge.total_steps} steps and {challenge.count} challenges; "
                 f"the run has {len(commitments)} steps, the file lists {len(challenge.steps)}")]
    try:
        derived = choose_steps(head, challenge.nonce, challenge.count, len(commitments))
    except ChallengeError as exc:
        return [(exc.reason, exc.message)]
    if derived != challenge.steps:
        return [("challenge-steps-mismatch", f"the challenge lists steps {list(challenge.steps)}; head and nonce give {list(derived)}")]
    return []
