"""Start-up hook of a tracked KFP executor: ``python -m cmf_kubeflow.bootstrap -m MODULE ARGS``.

:func:`cmf_kubeflow.track` rewrites each lightweight component's command from
``python3 -m kfp.dsl.executor_main ARGS`` to ``python3 -m cmf_kubeflow.bootstrap -m
kfp.dsl.executor_main ARGS`` (when this module is importable in the image). The hook then:

1. reads the ExecutorInput from ``--executor_input`` and which task run this is
   (:func:`cmf_kubeflow.conf.task_identity`);
2. emits an OpenLineage START event (parameters, input artifacts with their digests) through
   :func:`cmf_core.openlineage.emit.get_emitter` and starts an energy monitor;
3. runs MODULE as ``__main__`` (``runpy``), unchanged: the component code is never touched;
4. reads the executor output file (output artifacts with the metadata the code set, output
   parameters), stops the monitor and emits the terminal event: COMPLETE, or FAIL with the
   error when the module raised or exited non-zero (a failed task publishes no outputs in KFP,
   artifacts or parameters, so none are recorded).

Steps 1-2 and 4 are guarded: a tracking failure logs one warning and the task runs and exits
exactly as it would untracked. ``CMF_DISABLED=1`` turns the hook into a plain ``-m MODULE``.
Importing this module is cheap (standard library only): the executor's command imports it to
check that cmf-foundation is installed before using it.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import time
from pathlib import Path
from typing import Any

USAGE = "usage: python -m cmf_kubeflow.bootstrap -m MODULE [ARGS...]"


class _Session:
    """State carried from the START event to the terminal one."""

    def __init__(self, settings: Any, emitter: Any, run: Any, executor_input: dict[str, Any],
                 inputs: list[Any], monitor: Any) -> None:
        self.settings = settings
        self.emitter = emitter
        self.run = run
        self.executor_input = executor_input
        self.inputs = inputs
        self.monitor = monitor


def _parse(args: list[str]) -> tuple[dict[str, Any], str]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--executor_input", default=None)
    parser.add_argument("--function_to_execute", default="task")
    known, _ = parser.parse_known_args(args)
    if not known.executor_input:
        raise ValueError("no --executor_input argument: not a KFP executor command line")
    return json.loads(known.executor_input), known.function_to_execute


DIGEST_BYTES_PER_S = 200e6
"""Bytes hashed per second of ``CMF_HOOK_TIMEOUT_S`` (larger artifacts are not hashed)."""


def _size(path: Path) -> tuple[int, int]:
    """Total bytes and latest modification time (ns) of a file or a folder tree (files that
    vanish meanwhile are skipped; above ``cmf_core.openlineage.local.MAX_WALK_FILES`` entries,
    the folder's own stat, as for every local dataset)."""
    from cmf_core.openlineage.local import MAX_WALK_FILES

    st = path.stat()
    if not path.is_dir():
        return st.st_size, st.st_mtime_ns
    size, newest = 0, 0
    for count, p in enumerate(path.rglob("*")):
        if count >= MAX_WALK_FILES:
            return st.st_size, st.st_mtime_ns
        try:
            if p.is_file():
                s = p.stat()
                size, newest = size + s.st_size, max(newest, s.st_mtime_ns)
        except OSError:
            continue
    return size, newest


def _digester(settings: Any) -> Any:
    """Digest local bytes within the hook's time budget, else identify them by size and time.

    Artifacts larger than ``hook_timeout_s`` x :data:`DIGEST_BYTES_PER_S` are not read at all;
    a slower disk is cut off by the time cap, and bytes that cannot be read (not a regular
    file, unreadable, gone meanwhile) are not either. Either way the artifact gets a
    ``version:`` id over its path, size and modification time (None, its URI and metadata,
    when even that cannot be read).
    """
    from cmf_core.errors import InvalidInputError
    from cmf_core.guard import Timeout, run_bounded
    from cmf_core.identity import path_digest, remote_digest

    def digest(path: Path) -> str | None:
        try:
            size, mtime = _size(path)
        except OSError:
            return None
        by_stat = remote_digest(str(path), f"stat:{size}:{mtime}")
        if size > settings.hook_timeout_s * DIGEST_BYTES_PER_S:
            return by_stat
        try:
            return run_bounded(lambda: path_digest(path), settings.hook_timeout_s,
                               f"digesting {path}")
        except (Timeout, InvalidInputError, OSError):
            return by_stat

    return digest


def _report(where: str, exc: Exception) -> None:
    """:func:`cmf_core.guard.report`, or one line on stderr if even cmf_core cannot load."""
    try:
        from cmf_core.guard import report
    except Exception:  # a broken installation: still never fail the task
        sys.stderr.write(f"cmf: {where} failed ({type(exc).__name__}: {exc}). This has no "
                         "impact on the task itself.\n")
        return
    report(where, exc)


def begin(args: list[str], env: dict[str, str] | None = None) -> _Session | None:
    """Emit the START event and start measuring. Never raises; ``None`` means untracked."""
    try:
        from cmf_core.config import is_disabled

        if is_disabled():
            return None
        return _begin(args, env)
    except Exception as e:
        _report("starting Kubeflow task tracking", e)
        return None


def _begin(args: list[str], env: dict[str, str] | None) -> _Session:
    from cmf_core.config import load_settings
    from cmf_core.energy import EnergyMonitor
    from cmf_core.openlineage.emit import get_emitter
    from cmf_core.process import process_property
    from cmf_kubeflow import adapter
    from cmf_kubeflow.conf import POD_NAME_ENV, run_link, task_identity, ui_endpoint

    env = dict(os.environ if env is None else env)
    executor_input, function = _parse(args)
    outputs = executor_input.get("outputs") or {}
    ident = task_identity(env, function=function, output_file=outputs.get("outputFile"))
    settings = load_settings()
    emitter = get_emitter(settings)
    inputs_spec = executor_input.get("inputs") or {}
    props: dict[str, Any] = {"kfp.function": function, "kfp.identity_source": ident.source,
                             **process_property()}  # the executor's process (`cmf reap`)
    if env.get(POD_NAME_ENV):
        props["kfp.pod_name"] = env[POD_NAME_ENV]
    if ident.source == "cluster":  # the KFP run id is known: link to its page in the KFP UI
        props.update(run_link(ui_endpoint(env=env), ident.run_key))
    run = adapter.TaskRun(
        pipeline=ident.pipeline, run_key=ident.run_key, task=ident.task, scope=ident.scope,
        started_at=time.time(),
        params=adapter.component_params(inputs_spec.get("parameterValues") or {}),
        inputs=[adapter.RuntimeArtifact.from_executor(key, art)
                for key, lst in sorted((inputs_spec.get("artifacts") or {}).items())
                for art in (lst.get("artifacts") or [])],
        properties=props,
    )
    digest = _digester(settings)
    inputs = [adapter.describe(a, settings.site, digester=digest) for a in run.inputs]
    for event in adapter.run_events(run, settings.site, inputs):
        emitter.emit(event)
    monitor = EnergyMonitor(settings).start() if settings.energy else None
    return _Session(settings, emitter, run, executor_input, inputs, monitor)


def end(session: _Session | None, error: str | None) -> None:
    """Emit the terminal event. Never raises."""
    if session is None:
        return
    try:
        _end(session, error)
    except Exception as e:
        _report("finishing Kubeflow task tracking", e)
    finally:
        try:
            session.emitter.close(timeout=session.settings.hook_timeout_s)
        except Exception as e:
            _report("closing the CMF emitter", e)


def _read_output_parameters(outputs: dict[str, Any], written: dict[str, Any]) -> dict[str, Any]:
    """Output parameters: those in the executor output, then ``OutputPath`` files."""
    values = dict(written)
    for name, spec in (outputs.get("parameters") or {}).items():
        path = (spec or {}).get("outputFile")
        if name in values or not path or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        try:
            values[name] = json.loads(text)
        except ValueError:
            values[name] = text
    return values


def _end(session: _Session, error: str | None) -> None:
    from cmf_core.model import ExecutionStatus
    from cmf_kubeflow import adapter

    run, settings = session.run, session.settings
    outputs = session.executor_input.get("outputs") or {}
    written: dict[str, Any] = {}
    path = outputs.get("outputFile")
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8") as fh:
            written = json.load(fh)
    updates = {key: (lst.get("artifacts") or [{}])[0]
               for key, lst in (written.get("artifacts") or {}).items()}
    # a failed task publishes no outputs in KFP: its partial files are not recorded either
    run.outputs = [] if error else [
        adapter.RuntimeArtifact.from_executor(key, art).merged(updates.get(key, {}))
        for key, lst in sorted((outputs.get("artifacts") or {}).items())
        for art in (lst.get("artifacts") or [])]
    run.output_params = {} if error else _read_output_parameters(
        outputs, written.get("parameterValues") or {})
    run.ended_at = time.time()
    run.status = ExecutionStatus.FAILED if error else ExecutionStatus.COMPLETED
    run.error = error
    energy = None
    if session.monitor is not None:
        energy = session.monitor.stop().to_record(run.execution_id, settings)
    digest = _digester(settings)
    described = [adapter.describe(a, settings.site, digester=digest) for a in run.outputs]
    for event in adapter.run_events(run, settings.site, session.inputs, described, energy,
                                    terminal_only=True):
        session.emitter.emit(event)


def main(argv: list[str] | None = None) -> None:
    """Run ``-m MODULE ARGS`` as ``__main__`` between the START and the terminal event."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "-m":
        sys.stderr.write(USAGE + "\n")
        raise SystemExit(2)
    module, rest = args[1], args[2:]
    session = begin(rest)
    sys.argv = [module, *rest]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code
        end(session, None if code in (None, 0) else f"SystemExit: exit code {code}")
        raise
    except BaseException as e:
        from cmf_core.guard import exception_text  # never raises, though e's __str__ may

        end(session, exception_text(e))
        raise
    end(session, None)


if __name__ == "__main__":
    main()
