"""``pot-zk-ezkl-prover``: proves one SGD, LoRA or momentum step with ezkl (Halo2 + KZG).

Reads one protocol request (pot_zk.core.protocol) on stdin, prints one response on stdout. The
request's ``kind`` is one the ezkl backend has a statement for
(:data:`pot_zk.backends.ezkl.statements.STATEMENTS`); its ``circuit`` that statement's dict; ``witness_path`` a step file written by
pot_zk.kinds.registry.save_training_step; ``options.srs_path`` an SRS file (provenance ``configured``), absent
for the cached locally generated dev SRS (provenance ``dev-srs``). The ``ezkl`` backend proves
it (:meth:`pot_zk.backends.ezkl.backend.EzklBackend.prove`).
"""

from __future__ import annotations

from typing import Any

from pot_zk.core import protocol
from pot_zk.core.prover_program import serve


def _prove(request: dict[str, Any]) -> protocol.ProverResponse:
    from pot_zk.backends.program import prove_request

    return prove_request("ezkl", request)


def main() -> None:
    from pot_zk.backends.ezkl.statements import STATEMENTS

    serve(tuple(STATEMENTS.names()), _prove)


if __name__ == "__main__":
    main()
