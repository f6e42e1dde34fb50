"""Each test file's seconds in a pytest run, from its JUnit XML (``pytest --junitxml=F``), as the
JSON tests/conftest.py reads to hand the two xdist workers the costliest files first.

    .venv/bin/pytest -q --junitxml=/tmp/run.xml
    .venv/bin/python scripts/test_costs.py /tmp/run.xml > tests/file_costs.json

With ``--dist loadfile`` a worker takes a whole file at a time; pytest-xdist hands them out in
the order given (``--no-loadscope-reorder``; by default it orders them by their number of
tests, which put files of one or two long tests last, where one worker ran them alone).
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter


def file_costs(junit: str) -> dict[str, int]:
    seconds: Counter[str] = Counter()
    for case in ET.parse(junit).iter("testcase"):
        path = case.get("classname", "").replace(".", "/") + ".py"
        seconds[path] += float(case.get("time") or 0)
    return {path: round(total) for path, total in seconds.most_common() if round(total) > 0}


if __name__ == "__main__":
    json.dump(file_costs(sys.argv[1]), sys.stdout, indent=0, sort_keys=False)
    sys.stdout.write("\n")
