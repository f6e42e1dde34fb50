"""One registry idiom for every pluggable part of pot-zk (fsspec's ``known_implementations``).

A :class:`Registry` maps the names the configuration uses to implementations, given as import
strings ``"package.module:attribute"`` and imported only when first asked for (so naming
a Dask executor or the ezkl backend costs nothing until it is used), or as objects. Each
registry is declared once, in the module that defines its extension point, next to the
implementations it names; :meth:`Registry.register` adds one from outside (a plugin, a test).

An unknown name raises :class:`~pot_zk.exceptions.ConfigurationError` naming the valid ones
and the configuration key that chose it.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any, Generic, Iterator, Mapping, TypeVar

from pot_zk.core.extras import MissingExtraError, missing_extra
from pot_zk.exceptions import ConfigurationError

T = TypeVar("T")


def import_object(import_path: str) -> Any:
    """Resolve ``"package.module:attribute"``; ConfigurationError when it does not exist, a
    :class:`~pot_zk.core.extras.MissingExtraError` naming the ``pip install`` when it needs an
    optional dependency that is not installed."""
    module_name, _, attribute = import_path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except ImportError as error:
        extra = missing_extra(error)
        if extra is not None:
            raise extra from error
        raise ConfigurationError(f"cannot import {import_path!r} ({error}); is the module installed?", key=import_path) from error
    except AttributeError as error:
        raise ConfigurationError(f"cannot import {import_path!r} ({error}); is the module installed?", key=import_path) from error


class Registry(Generic[T]):
    """Name -> implementation, imported lazily.

    ``what`` names the kind of thing for messages (``"failure handler"``), ``key`` the config
    key that selects one (``"handler.name"``).
    """

    def __init__(self, what: str, key: str, known: Mapping[str, str | T] | None = None) -> None:
        self.what = what
        self.key = key
        self._entries: dict[str, str | T] = dict(known or {})
        self._lock = threading.Lock()

    def register(self, name: str, implementation: str | T, *, replace: bool = False) -> None:
        """Add ``name`` (an import string or the object); an existing name needs ``replace``."""
        with self._lock:
            if name in self._entries and not replace:
                raise ConfigurationError(f"{self.what} {name!r} is already registered", key=self.key)
            self._entries[name] = implementation

    def get(self, name: str) -> T:
        """The implementation registered as ``name``, imported on first use."""
        with self._lock:
            if name not in self._entries:
                raise ConfigurationError(
                    f"unknown {self.what} {name!r}; valid: {', '.join(sorted(self._entries))}", key=self.key, valid=sorted(self._entries)
                )
            entry = self._entries[name]
        if isinstance(entry, str):
            resolved = import_object(entry)
            with self._lock:
                self._entries[name] = resolved
            return resolved
        return entry

    def check(self, name: str) -> str:
        """``name`` if it is registered (nothing is imported); else the ConfigurationError."""
        if name not in self:
            self.get(name)
        return name

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """Every (name, implementation), importing each."""
        for name in self.names():
            yield name, self.get(name)

    def installed(self) -> Iterator[tuple[str, T]]:
        """Every (name, implementation) whose optional dependencies are installed (an entry
        that raises :class:`~pot_zk.core.extras.MissingExtraError` is left out)."""
        for name in self.names():
            try:
                yield name, self.get(name)
            except MissingExtraError:
                continue

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {self.names()})"
