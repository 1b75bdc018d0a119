"""A small name -> factory registry, one instance per kind of component (timm-style).

Every buildable thing in fuselab (fusion operators, encoders, models, datasets) is registered
under a short name so that a study config can name anything the library has::

    OPERATORS = Registry("fusion operator")

    @OPERATORS.register("concat")
    class ConcatFusion(FusionOp): ...

    OPERATORS.build("concat", in_dims={"a": 4}, out_dim=8)

An unknown name raises :class:`UnknownNameError` (a ``KeyError`` and a ``ValueError``) listing the
allowed names with a "did you mean".
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class UnknownNameError(KeyError, ValueError):
    """An unknown name in a registry (or any other closed set of names fuselab looks up).

    Both a ``KeyError`` (what ``fusion.build`` / ``data.load`` raised) and a ``ValueError`` (what
    ``models.build`` raised), so callers catching either keep working. The message lists the
    allowed names and, when one is close, a "did you mean". ``name``, ``kind`` and ``allowed``
    are kept as attributes.
    """

    def __init__(self, kind: str, name: object, allowed: Iterable[str], where: str = "") -> None:
        self.kind, self.name, self.allowed, self.where = kind, name, sorted(allowed), where
        close = difflib.get_close_matches(str(name), self.allowed, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        prefix = f"{where}: " if where else ""
        self.message = f"{prefix}unknown {kind} {name!r}; allowed: {self.allowed}.{hint}"
        super().__init__(self.message)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # A worker process sends its errors pickled; the default rebuilds from the message alone.
        return (type(self), (self.kind, self.name, self.allowed, self.where))

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message, wrapping it in quotes.
        return self.message


class Registry(Generic[T]):
    """Maps names to factories (classes or functions) of one kind of component."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Callable[..., T]] = {}

    @overload
    def register(self, name: str) -> Callable[[F], F]: ...

    @overload
    def register(self, name: str, factory: F) -> F: ...

    def register(self, name: str, factory: F | None = None) -> Callable[[F], F] | F:
        """Register ``factory`` under ``name``: ``@reg.register(name)`` or ``reg.register(name,
        factory)``; names are unique per registry (re-registering the same object is a no-op)."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"{self.kind} name: expected a non-empty str, got {name!r}")

        def deco(obj: F) -> F:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco if factory is None else deco(factory)

    def get(self, name: str, where: str = "") -> Callable[..., T]:
        """The factory registered as ``name``; :class:`UnknownNameError` otherwise (``where``:
        the config path to name in the message, e.g. ``"model.name"``)."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.kind, name, self._items, where) from None

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
