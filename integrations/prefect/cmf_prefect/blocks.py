"""Prefect blocks for CMF connections: saved once, loaded by name in any flow.

    from cmf_prefect.blocks import CmfConnection, CmfPeer

    CmfConnection(store_url="postgresql://cmf@db/cmf", site="edge-01").save("edge")
    CmfPeer(url="https://cmf.hpc.example.org", token="...").save("hpc")

    recommend_seed(..., connection=CmfConnection.load("edge"))
    federated_sync(CmfPeer.load("hpc"), connection=CmfConnection.load("edge"))

Register the block types with a server once: ``prefect block register -m cmf_prefect.blocks``.
Fields left empty fall back to the usual CMF configuration (``CMF_*`` variables, ``cmf.toml``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

if TYPE_CHECKING:
    from cmf_core.config import Settings


class CmfConnection(Block):
    """The local CMF store (or a CMF server) that tasks read and record to."""

    _block_type_name: ClassVar[str] = "CMF Connection"
    _block_type_slug: ClassVar[str] = "cmf-connection"
    _description: ClassVar[str] = "Where cmf-foundation keeps metadata: a store or a server."

    store_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the CMF store (default: CMF_STORE_URL or "
        "the embedded SQLite store).")
    site: str | None = Field(default=None, description="Id of this site (default: CMF_SITE).")
    server_url: str | None = Field(
        default=None, description="URL of a CMF server to send events to (CMF_SERVER_URL).")
    server_token: SecretStr | None = Field(
        default=None, description="Bearer token for the CMF server.")

    def settings(self) -> Settings:
        """CMF settings: these fields first, then the usual configuration."""
        from cmf_core.config import load_settings

        return load_settings(
            store_url=self.store_url, site=self.site, server_url=self.server_url,
            server_token=self.server_token.get_secret_value() if self.server_token else None)


class CmfPeer(Block):
    """A peer site's ``cmf serve`` for federated sync."""

    _block_type_name: ClassVar[str] = "CMF Peer"
    _block_type_slug: ClassVar[str] = "cmf-peer"
    _description: ClassVar[str] = "A peer cmf-foundation site to exchange metadata with."

    url: str = Field(description="Base URL of the peer's `cmf serve`.")
    token: SecretStr | None = Field(default=None, description="Bearer token for the peer.")
