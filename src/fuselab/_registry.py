"""A small name -> factory registry, one instance per kind of component (timm-style).

Every buildable thing in fuselab (fusion operators, encoders, models, datasets) is registered
under a short name so that a study config can name anything the library has::

    OPERATORS = Registry("fusion operator")

    @OPERATORS.register("concat")
    class ConcatFusion(FusionOp): ...

    OPERATORS.build("concat", in_dims={"a": 4}, out_dim=8)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories (classes or functions) of one kind of component."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under ``name``; names are unique per registry."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._items and self._items[name] is not factory:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = factory
            return factory

        return deco

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``; a ``KeyError`` listing the known names otherwise."""
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), self._items, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise KeyError(
                f"unknown {self.kind} {name!r}; available: {sorted(self._items)}.{hint}"
            ) from None

    def build(self, name: str, /, **kwargs: Any) -> T:
        """Build the component registered as ``name`` with keyword arguments."""
        return self.get(name)(**kwargs)

    def available(self) -> list[str]:
        """Sorted names of every registered component."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.available())

    def __len__(self) -> int:
        return len(self._items)
