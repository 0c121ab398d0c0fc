"""Fixtures of the federation tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from cmf_core.federation.export import canonical_lines, load_vector
from cmf_core.store import Store


def snapshot(store: Store) -> tuple[list[str], int, dict[str, int]]:
    """What an import may change: the records, the store's seq and its version vector."""
    return canonical_lines(store), store.max_seq(), load_vector(store)


class SharedEmpty:
    """An empty store that the tests whose bundle must be refused share: ``get`` gives it while
    its ``snapshot`` is still that of a new store, else a new one (so a test that wrote to it
    changes nothing another test sees)."""

    def __init__(self, new_store: Callable[[], Store]) -> None:
        self.new_store = new_store
        self.store: Store | None = None
        self.empty: tuple[list[str], int, dict[str, int]] | None = None

    def get(self) -> Store:
        if self.store is None or snapshot(self.store) != self.empty:
            self.close()
            self.store = self.new_store()
            self.empty = snapshot(self.store)
        return self.store

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


@pytest.fixture(scope="module")
def shared_empty(new_store: Callable[[], Store]) -> Iterator[SharedEmpty]:
    shared = SharedEmpty(new_store)
    yield shared
    shared.close()


@pytest.fixture
def empty_store(shared_empty: SharedEmpty) -> Store:
    """A new, empty store of each backend, shared by the tests that import only refused input."""
    return shared_empty.get()
