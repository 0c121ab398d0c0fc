"""Two lightweight KFP components to put in any ``@dsl.pipeline``: recommend-seed and
federated-sync.

>>> from cmf_kubeflow.components import recommend_seed, federated_sync, use_cmf_secret
>>> @dsl.pipeline
... def tune(task: dict):
...     rec = recommend_seed(task=task, k=5)
...     search(seeds=rec.outputs["configs"])            # a list of configuration dicts
...     sync = federated_sync(peer_url="https://cmf.site-b.example", direction="both")
...     use_cmf_secret(sync, "cmf-peer")                  # token from a Kubernetes secret

``recommend_seed`` outputs the top-``k`` configurations of the most similar past tasks
(:func:`cmf_core.recommend.recommend`; of the model families in ``models`` when given) twice:
as the list parameter ``configs`` (plain ``{"model": ..., param: value}`` dicts, best first)
and as the JSON artifact ``seeds`` (the full recommendation, with ``optuna_params`` for
``Study.enqueue_trial``, the evidence, and under ``seeder`` the adaptive seeder's state:
``AdaptiveSeeder.from_dict(json.load(...))`` in the search component gives seeds chosen after
the scores of the previous ones). It never fails the pipeline for a bad task description or
``models`` naming no family with runs: the search then starts cold and the artifact says why
(``strict=False`` of ``recommend``).

``federated_sync`` pushes and/or pulls metadata between this site's CMF store and a peer CMF
server (:func:`cmf_core.federation.peer.sync`) and outputs the ``summary`` dict.

Where settings come from inside the component: the usual ``CMF_*`` variables (``CMF_STORE_URL``,
``CMF_SITE``, ``CMF_SERVER_URL``, ``CMF_SERVER_TOKEN``), set as container env on a cluster, from a
Kubernetes secret with :func:`use_cmf_secret`, or inherited from the caller under ``kfp.local``.
Tokens are never component parameters (they would be stored in the pipeline spec and shown in
the UI): ``federated_sync`` reads the token from the variable named by ``token_env``.

The component bodies only import this module and call :func:`run_recommend_seed` /
:func:`run_federated_sync`, so the image needs ``cmf-foundation[kubeflow]`` (plus the
``recommend`` extra for seeds). The defaults use ``$KFP_CMF_IMAGE`` (else ``python:3.11``) and
install nothing, which is right for ``kfp.local`` and for an image you built with
cmf-foundation; :func:`recommend_seed_component` and :func:`federated_sync_component` build
variants with another image or with ``packages_to_install``.
"""

# No ``from __future__ import annotations`` here: kfp reads the component functions'
# annotations as objects (Output[Artifact], NamedTuple), not as strings.
import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Optional

from cmf_core.errors import ConfigError, InvalidInputError

IMAGE_ENV = "KFP_CMF_IMAGE"
DEFAULT_IMAGE = "python:3.11"
DEFAULT_SECRET_KEYS: Mapping[str, str] = {"token": "CMF_SERVER_TOKEN"}


# the KFP components --------------------------------------------------------------------------
def recommend_seed_component(base_image: str | None = None,
                             packages_to_install: Sequence[str] = (),
                             install_kfp_package: bool = False) -> Any:
    """The ``recommend_seed`` component, built for ``base_image`` (see the module docs)."""
    from kfp import dsl
    from kfp.dsl import Artifact, Output

    def recommend_seed(task: dict, seeds: Output[Artifact], k: int = 5, store_url: str = "",
                       strict: bool = False,
                       models: Optional[list] = None,  # noqa: UP045 (kfp can't read X | None)
                       ) -> NamedTuple("Outputs", [("configs", list)]):
        """Top-k model + hyperparameter configurations of the most similar past tasks (of the
        model families in ``models``, when given)."""
        from cmf_kubeflow.steps import run_recommend_seed

        configs, body = run_recommend_seed(task, k=k, store_url=store_url, path=seeds.path,
                                           strict=strict, models=models)
        seeds.metadata["strategy"] = body["strategy"]
        seeds.metadata["message"] = body["message"]
        seeds.metadata["k"] = len(configs)
        return (configs,)

    return dsl.component(recommend_seed, base_image=base_image or _image(),
                         packages_to_install=list(packages_to_install) or None,
                         install_kfp_package=install_kfp_package)


def federated_sync_component(base_image: str | None = None,
                             packages_to_install: Sequence[str] = (),
                             install_kfp_package: bool = False) -> Any:
    """The ``federated_sync`` component, built for ``base_image`` (see the module docs)."""
    from kfp import dsl

    def federated_sync(peer_url: str = "", direction: str = "both", pipeline: str = "",
                       token_env: str = "CMF_SERVER_TOKEN", strict: bool = True
                       ) -> NamedTuple("Outputs", [("summary", dict)]):
        """Push and/or pull CMF metadata with a peer CMF server."""
        from cmf_kubeflow.steps import run_federated_sync

        return (run_federated_sync(peer_url, direction, pipeline, token_env, strict),)

    return dsl.component(federated_sync, base_image=base_image or _image(),
                         packages_to_install=list(packages_to_install) or None,
                         install_kfp_package=install_kfp_package)


def _image() -> str:
    return os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE


def use_cmf_secret(task: Any, secret_name: str,
                   keys: Mapping[str, str] | None = None) -> Any:
    """Expose keys of Kubernetes secret ``secret_name`` as environment variables of ``task``.

    ``keys`` maps secret key -> variable (default ``{"token": "CMF_SERVER_TOKEN"}``). Writes the
    ``secretAsEnv`` entry of the Kubernetes platform spec (as ``kfp-kubernetes`` does, without
    needing it); the secret must exist in the run's namespace. Returns ``task``.
    """
    from cmf_core.config import ENV_PREFIX, Settings

    if not secret_name:
        raise InvalidInputError("secret_name must name a Kubernetes secret")
    keys = dict(keys or DEFAULT_SECRET_KEYS)
    known = set(Settings.model_fields)
    for var in keys.values():
        if var.startswith(ENV_PREFIX) and var[len(ENV_PREFIX):].lower() not in known:
            raise ConfigError(
                f"{var} is not a CMF setting and CMF_* names are reserved for settings; use a "
                "CMF setting (CMF_SERVER_TOKEN, CMF_SERVER_URL, ...) or a name without CMF_")
    k8s = task.platform_config.setdefault("kubernetes", {})
    entries = [e for e in k8s.get("secretAsEnv", []) if e.get("secretName") != secret_name]
    entries.append({"secretName": secret_name,
                    "keyToEnv": [{"secretKey": k, "envVar": v} for k, v in sorted(keys.items())]})
    k8s["secretAsEnv"] = entries
    return task


recommend_seed = recommend_seed_component()
"""Recommend-seed component (default image: ``$KFP_CMF_IMAGE`` or ``python:3.11``)."""
federated_sync = federated_sync_component()
"""Federated-sync component (default image: ``$KFP_CMF_IMAGE`` or ``python:3.11``)."""
