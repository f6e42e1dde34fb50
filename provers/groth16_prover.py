"""``pot-zk-groth16-prover``: proves one step exactly with Groth16 (groth16py, circom 2), of any kind
the groth16 backend has a statement for (:data:`pot_zk.backends.groth16.statements.STATEMENTS`).

Reads one protocol request (pot_zk.core.protocol) on stdin, prints one response on stdout;
the ``groth16`` backend proves it (:meth:`pot_zk.backends.groth16.backend.Groth16Backend.prove`;
:mod:`pot_zk.backends.groth16.request` says what it proves and refuses). With
``--keep-key-s N`` the request goes to a key holder that keeps the proving key (and the
framework) loaded for N seconds after its last proof (:mod:`provers.groth16_held`), started
if none listens: a step then costs its proof, not a key load and an interpreter start-up. The
holder proves ``--provers`` requests at once (default: one per usable core), so prover
programs started side by side (``executor=process``) keep every core busy with one loaded key.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any



def _prove(request: dict[str, Any]) -> Any:
    from pot_zk.backends.program import prove_request

    return prove_request("groth16", request)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pot-zk-groth16-prover", description="reads one pot-zk-prover/1 request on stdin")
    parser.add_argument("--keep-key-s", type=float, default=0.0, help="prove in a key holder that keeps the proving key loaded this long after its last proof (0: load it here)")
    parser.add_argument("--provers", type=int, default=0, help="a key holder started now proves this many requests at once (0: one per usable core)")
    options = parser.parse_args(sys.argv[1:] if argv is None else argv)
    raw = sys.stdin.read()
    if options.provers < 0:
        parser.error("--provers must be >= 0")
    notes: list[str] = []
    if options.keep_key_s > 0:
        from provers.groth16_held import forward, usable_cores

        answered = forward(raw, options.keep_key_s, options.provers or usable_cores(), notes)
        if answered is not None:
            code, document = answered
            sys.stdout.write(document + "\n")
            sys.stdout.flush()
            sys.exit(code)
    from pot_zk.backends.groth16.statements import STATEMENTS
    from pot_zk.core.prover_program import serve

    serve(tuple(STATEMENTS.names()), _prove, backend="groth16", raw=raw, notes=notes)


if __name__ == "__main__":
    main()
