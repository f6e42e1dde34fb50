"""Put this directory on PYTHONPATH and name modules in $POT_ZK_TEST_MISSING (comma-separated):
the interpreter (and every Python process it starts with that environment) then finds them no
more than if they were not installed, as on a machine without that pot-zk extra."""

import os
import sys
from importlib.machinery import PathFinder

MISSING = {name for name in os.environ.get("POT_ZK_TEST_MISSING", "").split(",") if name}


class WithoutMissing(PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in MISSING:
            return None
        return super().find_spec(name, path, target)


if MISSING:
    sys.meta_path[:] = [WithoutMissing if finder is PathFinder else finder for finder in sys.meta_path]
