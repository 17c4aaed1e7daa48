"""One registry type for every "name -> thing" table in edge-tl (backbones, sources, attacks, runtimes, ...).

One rule for all of them: registering a name twice is a programming error (:class:`ConfigError`) unless the
caller says ``replace=True`` (tests swapping in a fake); looking up an unknown name raises
:class:`UnknownNameError` with the closest registered name; names come back in registration order, so CLI
choices and help texts derived from a registry are stable.

    ATTACKS: Registry[AttackSpec] = Registry("attack", load=_import_builtin_attacks)
    ATTACKS.add("fgsm", spec)
    ATTACKS.get("fgsn")   # UnknownNameError: unknown attack 'fgsn' (did you mean 'fgsm'?)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from edge_tl.errors import ConfigError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one ``kind``; ``load`` (run once, before the first read) imports the built-in ones."""

    def __init__(self, kind: str, load: Callable[[], object] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._load = load
        self._loading = False

    def _ensure(self) -> None:
        if self._load is not None and not self._loading:
            self._loading = True
            try:
                self._load()
            finally:
                self._load = None
                self._loading = False

    def add(self, name: str, value: T, *, replace: bool = False) -> T:
        """Register ``value`` under ``name``; a second registration of ``name`` raises unless ``replace``."""
        if not replace and name in self._items:
            raise ConfigError(f"{self.kind} '{name}' is already registered")
        self._items[name] = value
        return value

    def register(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """Decorator form of :meth:`add`: ``@REG.register("name")`` over a function or class."""

        def deco(value: T) -> T:
            return self.add(name, value, replace=replace)

        return deco

    def remove(self, name: str) -> None:
        """Forget ``name`` (tests that registered a temporary entry)."""
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        """The entry for ``name``; an unknown name raises with the closest match and the valid names."""
        self._ensure()
        if name not in self._items:
            raise UnknownNameError(self.kind, name, list(self._items))
        return self._items[name]

    def find(self, name: str) -> T | None:
        """The entry for ``name``, or None."""
        self._ensure()
        return self._items.get(name)

    def peek(self, name: str) -> T | None:
        """The entry for ``name`` among those registered so far, without running ``load`` (for registration
        code, which runs while the built-in entries are still being imported)."""
        return self._items.get(name)

    def names(self) -> list[str]:
        """Every registered name, in registration order."""
        self._ensure()
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        self._ensure()
        return list(self._items.items())

    def values(self) -> list[T]:
        self._ensure()
        return list(self._items.values())

    def __contains__(self, name: object) -> bool:
        self._ensure()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._ensure()
        return len(self._items)
