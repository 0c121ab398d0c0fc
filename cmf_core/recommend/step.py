"""The recommend-seed step of a pipeline, shared by the orchestrator adapters.

The Airflow operator, the Prefect task and the Kubeflow component all call
:func:`recommend_step`, so a step behaves the same everywhere: by default (``strict=False``) it
never fails the pipeline. A task that cannot be described (an empty or degenerate dataset, a
missing file, an unknown category) gives no seeds and the search starts cold; a CMF store that
cannot be opened or read gives seeds from the shipped knowledge base alone. Each case is
logged as a warning and said in the recommendation's ``message`` (and ``error``).
``strict=True`` raises instead.
"""

from __future__ import annotations

import ast
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from typing import Any

from cmf_core.recommend.recommender import Recommendation, no_seeds, recommend
from cmf_core.recommend.task import TaskDescription

log = logging.getLogger(__name__)

#: a task description, its dict form, or a callable that makes one (e.g. describes a CSV file)
TaskSource = TaskDescription | Mapping[str, Any] | Callable[[], TaskDescription | Mapping[str, Any]]


def recommend_step(task: TaskSource, *, k: int = 5, store: Callable[[], Any] | None = None,
                   strict: bool = False, logger: logging.Logger | logging.LoggerAdapter | None
                   = None, models: Collection[str] | str | None = None) -> Recommendation:
    """Top-``k`` seeds for ``task`` as a pipeline step.

    ``store`` opens the CMF store whose recorded runs join the shipped knowledge base (it is
    closed afterwards); None: the shipped knowledge base alone. ``models``: the model families
    the search space has (seeds of those alone; see :func:`recommend`), a list or, as a step's
    templated or typed-in parameter may arrive, a string: ``"rf,hgb"`` or a list written out
    (``"['rf', 'hgb']"``, what Airflow renders a list parameter to).
    """
    started = time.perf_counter()
    say = logger or log
    try:
        desc = task() if callable(task) else task
    except Exception as e:
        if strict:
            raise
        say.warning("cmf recommend-seed: could not describe the task (%s); no seeds, the "
                    "search starts cold", e)
        return no_seeds(None, f"could not describe the task: {e}", started)
    opened = None
    unopened = None
    if store is not None:
        try:
            opened = store()
        except Exception as e:
            if strict:
                raise
            say.warning("cmf recommend-seed: the CMF store cannot be opened (%s); "
                        "recommending from the shipped knowledge base only", e)
            unopened = e
    try:
        rec = _recommend(desc, k, opened, strict, say, started, step_models(models))
        if unopened is not None and not rec.error:  # say so, as for a store that can't be read
            rec = replace(rec, message=f"{rec.message}; the CMF store's runs were left out: it "
                                       f"cannot be opened: {unopened}")
        return rec
    finally:
        if opened is not None:
            try:
                opened.close()
            except Exception as e:  # a close failure must not fail the step either
                say.warning("cmf recommend-seed: closing the CMF store failed: %s", e)


def step_models(models: Any) -> Any:
    """``models`` of a step as a list of names when it is a string: comma-separated names, or
    a list written out (JSON or Python, as Jinja renders one); anything else as it is (checked
    by :func:`recommend`)."""
    if not isinstance(models, str):
        return models
    text = models.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            written = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            written = None
        if isinstance(written, (list, tuple)):
            return list(written)
    names = [m.strip() for m in text.split(",") if m.strip()]
    return names or models  # an empty string: recommend says it is not a list of names


def _recommend(desc: Any, k: int, store: Any, strict: bool,
               say: logging.Logger | logging.LoggerAdapter, started: float,
               models: Collection[str] | str | None = None) -> Recommendation:
    try:
        rec = recommend(desc, k=k, store=store, strict=strict, models=models)
    except Exception as e:  # strict, or not a CmfError (a store fault, a bug): never raised
        if strict:
            raise
        rec = no_seeds(desc, f"{type(e).__name__}: {e}", started)
    if rec.error and store is not None:
        # perhaps the store's fault: the shipped knowledge base alone may still recommend
        alone = _recommend(desc, k, None, strict, say, started, models)
        if not alone.error:
            say.warning("cmf recommend-seed: the CMF store's runs cannot be read (%s); "
                        "recommending from the shipped knowledge base only", rec.error)
            return replace(alone, message=f"{alone.message}; the CMF store's runs were left "
                                          f"out: {rec.error}")
    if rec.error:
        say.warning("cmf recommend-seed: %s", rec.message)
    return rec
