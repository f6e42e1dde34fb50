#!/usr/bin/env python
"""The seed's integration tests of its error handling, under the seed's name: end-to-end error
scenarios through the seed's API and the auditor integration, with real prover programs that
are missing, crash, print garbage, fail deterministically or cannot be started, and models that
are invalid. A thin entry point: it runs the test files that hold them.

    python scripts/test_improved_error_handling.py [pytest options, e.g. -k retry]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import pytest

TESTS = Path(__file__).resolve().parent.parent / "tests"
FILES = ("test_zk_error_handling.py", "test_seed_examples.py", "test_seed_api.py", "test_seed_prover.py")


def main(argv: Sequence[str] | None = None) -> int:
    options = list(sys.argv[1:] if argv is None else argv)
    return int(pytest.main(["-q", *(str(TESTS / name) for name in FILES), *options]))


if __name__ == "__main__":
    sys.exit(main())
