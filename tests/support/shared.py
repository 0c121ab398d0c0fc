"""A store that a module's tests share while none of them changes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cmf_core.store import Store


class SharedStore:
    """A store that tests which only read (or only send refused input) share: ``get`` gives it
    while ``mark(store)`` is what it was after ``load``, else a fresh store, loaded again, so a
    test that wrote to it changes nothing another test sees. ``loaded`` is what ``load``
    returned."""

    def __init__(self, new_store: Callable[[], Store], mark: Callable[[Store], Any],
                 load: Callable[[Store], Any] = lambda store: None) -> None:
        self.new_store, self._mark, self._load = new_store, mark, load
        self.store: Store | None = None
        self.loaded: Any = None
        self._marked: Any = None

    def get(self) -> Store:
        if self.store is None or self._mark(self.store) != self._marked:
            self.close()
            self.store = self.new_store()
            self.loaded = self._load(self.store)
            self._marked = self._mark(self.store)
        return self.store

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
