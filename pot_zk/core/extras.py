"""Optional dependencies: which pot-zk extra installs a module, and the one-line error that says so.

    pip install 'pot-zk[groth16]'    # zk-groth16: groth16py, light-poseidon-python
    pip install 'pot-zk[ezkl]'       # zk-halo2: ezkl, onnx

The extras are declared in pyproject.toml; :data:`EXTRAS` maps the top-level modules they
provide to their names. :func:`missing_extra` turns the ModuleNotFoundError of one of them into
a :class:`MissingExtraError` naming the ``pip install`` that fixes it.
"""

from __future__ import annotations

from pot_zk.exceptions import ConfigurationError

EXTRAS: dict[str, tuple[str, str]] = {
    "ezkl": ("ezkl", "the ezkl backend (zk-halo2 proofs)"),
    "onnx": ("ezkl", "the ezkl backend (zk-halo2 proofs)"),
    "groth16py": ("groth16", "the groth16 backend (zk-groth16 proofs)"),
    "light_poseidon_python": ("groth16", "the groth16 backend (zk-groth16 proofs)"),
    "dask": ("dask", "executor=dask"),
    "distributed": ("dask", "executor=dask"),
    "peft": ("lora", "LoRA models made with peft"),
    "matplotlib": ("report", "pot-zk report and sweep-report plots"),
    "tensorboard": ("tensorboard", "logger=tensorboard"),
}
"""Top-level module -> (extra that installs it, what needs it)."""


class MissingExtraError(ConfigurationError):
    """An optional dependency is not installed. ``module`` is the missing module, ``extra`` the
    pot-zk extra that installs it."""

    def __init__(self, module: str, extra: str, needed_by: str) -> None:
        super().__init__(
            f"{needed_by} needs the Python package {module!r}, which is not installed: pip install 'pot-zk[{extra}]'",
            key=extra,
            module=module,
            extra=extra,
        )
        self.module = module
        self.extra = extra


def missing_extra(error: ImportError) -> MissingExtraError | None:
    """The MissingExtraError an ImportError stands for; None when it is not about an extra."""
    name = (getattr(error, "name", None) or "").partition(".")[0]
    if not isinstance(error, ModuleNotFoundError) or name not in EXTRAS:
        return None
    extra, needed_by = EXTRAS[name]
    return MissingExtraError(name, extra, needed_by)
