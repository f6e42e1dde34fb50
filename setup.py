"""Package list for setuptools; everything else is in pyproject.toml.

The Hydra configs live in the top-level ``conf/`` and are installed as the package
``pot_zk.conf``, so Hydra finds them as ``pkg://pot_zk.conf`` after ``pip install .`` and
``pip install -e .`` alike. ``pot_zk/conf`` is a symbolic link to ``../conf``, so the source tree
imported directly (``python -m ...`` from the checkout) finds them too.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["pot_zk", "pot_zk.*", "provers", "provers.*"]) + ["pot_zk.conf"],
    package_dir={"pot_zk.conf": "conf"},
)
