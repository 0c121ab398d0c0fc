"""Errors users see. Every one derives from :class:`CmfError` and names the value and the fix.

The CLI turns a ``CmfError`` into one line and exit code 1; the server maps each subclass to one
HTTP status. Anything else is a bug and propagates.
"""

from __future__ import annotations


class CmfError(Exception):
    """Root of every error cmf-foundation raises on purpose."""


class ConfigError(CmfError):
    """A configuration value is missing, unknown or malformed."""


class InvalidInputError(CmfError):
    """A value given to the API (path, id, type, name) is not acceptable."""


class InvalidEventError(InvalidInputError):
    """An OpenLineage event failed validation; nothing from it was stored."""


class NotFoundError(CmfError):
    """A pipeline, stage, execution or artifact that was asked for does not exist."""


class StoreError(CmfError):
    """The store cannot be opened or used (not a CMF store, newer schema, unreachable server)."""


class ServiceError(CmfError):
    """A service cmf-foundation reads from (an orchestrator's API) is unreachable or refused."""


class MergeConflictError(CmfError):
    """Two records share an id but differ in content that must never change."""


class AuthError(CmfError):
    """A request lacked a valid token for this site."""
