"""Fixtures of the federation tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from cmf_core.federation.export import canonical_lines, load_vector
from cmf_core.store import Store
from tests.support.shared import SharedStore


def snapshot(store: Store) -> tuple[list[str], int, dict[str, int]]:
    """What an import may change: the records, the store's seq and its version vector."""
    return canonical_lines(store), store.max_seq(), load_vector(store)


@pytest.fixture(scope="module")
def shared_empty(new_store: Callable[[], Store]) -> Iterator[SharedStore]:
    """An empty store shared by the tests whose bundle must be refused (replaced when a test's
    ``snapshot`` of it changed)."""
    shared = SharedStore(new_store, mark=snapshot)
    yield shared
    shared.close()


@pytest.fixture
def empty_store(shared_empty: SharedStore) -> Store:
    """A new, empty store of each backend, shared by the tests that import only refused input."""
    return shared_empty.get()
