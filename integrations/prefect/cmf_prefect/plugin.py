"""The ``prefect.plugins`` entry point: installs the in-process route as Prefect is imported.

Prefect 3.7 loads the ``prefect.plugins`` entry point group at ``import prefect`` when
``PREFECT_PLUGINS_ENABLED=true`` (``prefect/__init__.py`` ``_initialize_plugins`` ->
``prefect._internal.plugins.startup.run_startup_hooks``) and calls each plugin's
``setup_environment`` hook once, with a time limit (``PREFECT_PLUGINS_SETUP_TIMEOUT_SECONDS``).
``PREFECT_PLUGINS_DENY=cmf`` skips this plugin; ``prefect plugins diagnose`` lists it.

Declared in ``pyproject.toml``::

    [project.entry-points."prefect.plugins"]
    cmf = "cmf_prefect.plugin"

No logic lives here: :func:`setup_environment` calls :func:`cmf_prefect.auto.install`.
"""

from __future__ import annotations

from typing import Any

from prefect.plugins import register_hook

PREFECT_PLUGIN_API_REQUIRES = ">=0.1,<1"


@register_hook
def setup_environment(*, ctx: Any) -> None:
    """Install the in-process route; no environment changes (returns None)."""
    from cmf_core.guard import report

    try:
        from cmf_prefect.auto import install

        install()
    except Exception as e:  # never break `import prefect`
        report("installing the cmf Prefect plugin", e)
    return None
