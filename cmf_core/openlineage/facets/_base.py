"""What every CMF facet shares: the producer URI and the versioned schema URL.

A CMF facet is an OpenLineage custom facet: an ``@attr.define`` class deriving from the client's
``RunFacet`` or ``DatasetFacet``, whose ``_get_schema()`` returns its own versioned schema URL
(the ``$id`` of the JSON Schema file beside its module, plus ``#/$defs/<ClassName>``) and whose
``_producer`` defaults to :data:`PRODUCER` rather than the client's module-global producer.
"""

from __future__ import annotations

PRODUCER = "https://github.com/cmf-foundation/cmf-foundation"
"""URI that names cmf-foundation as the producer of events and facets."""

SCHEMA_BASE = "https://cmf-foundation.dev/spec/facets/1-0-0/"
"""Base of the versioned schema URLs of CMF facets (one version for the whole set)."""


def schema_url(name: str) -> str:
    """Versioned schema URL of the CMF facet class ``name``, in the OpenLineage style."""
    return f"{SCHEMA_BASE}{name}.json#/$defs/{name}"


class CmfFacetMixin:
    """Fills ``_producer`` with :data:`PRODUCER` before the client sets ``_schemaURL``."""

    _producer: str

    def __attrs_post_init__(self) -> None:
        if not self._producer:
            self._producer = PRODUCER
        super().__attrs_post_init__()  # type: ignore[misc]
