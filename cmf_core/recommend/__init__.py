"""Model and hyperparameter seeds for AutoML, learned from past pipeline runs.

    >>> from cmf_core.recommend import describe_csv, recommend
    >>> task = describe_csv("churn.csv", category="classification", target="Churn")
    >>> rec = recommend(task, k=5)              # shipped knowledge base (+ store=... runs)
    >>> rec.enqueue(study)                      # Optuna; or rec.configs() for other searchers
    >>> print(rec.explain())

Modules: :mod:`~cmf_core.recommend.task` (task descriptions, meta-features),
:mod:`~cmf_core.recommend.space` (the default discretised search space),
:mod:`~cmf_core.recommend.knowledge` (knowledge base from a CMF store or the shipped file),
:mod:`~cmf_core.recommend.graph` (similarity, knowledge graph),
:mod:`~cmf_core.recommend.calibrate` (choosing and validating metric and threshold),
:mod:`~cmf_core.recommend.recommender` (the recommend API),
:mod:`~cmf_core.recommend.adaptive` (seeds chosen after the scores of the previous ones),
:mod:`~cmf_core.recommend.cli`.
"""

from typing import TYPE_CHECKING

from cmf_core.lazy import lazy_exports

if TYPE_CHECKING:
    from cmf_core.recommend.adaptive import AdaptiveSeeder
    from cmf_core.recommend.graph import KnowledgeGraph, SimilarityMetric
    from cmf_core.recommend.knowledge import (
        KnowledgeBase,
        Run,
        from_store,
        optuna_callback,
        record_trial,
        shipped,
        task_properties,
    )
    from cmf_core.recommend.recommender import (
        Recommendation,
        Seed,
        Strategy,
        knowledge_graph,
        recommend,
    )
    from cmf_core.recommend.space import build_estimator, suggest_config
    from cmf_core.recommend.task import (
        Category,
        Modality,
        TaskDescription,
        describe_arrays,
        describe_csv,
        describe_series,
        describe_texts,
    )

# names -> their module, imported on first use (NumPy, networkx and scikit-learn load slowly,
# and `cmf` imports this package for every command)
_LAZY = {
    "AdaptiveSeeder": "cmf_core.recommend.adaptive",
    "KnowledgeGraph": "cmf_core.recommend.graph",
    "SimilarityMetric": "cmf_core.recommend.graph",
    "KnowledgeBase": "cmf_core.recommend.knowledge",
    "Run": "cmf_core.recommend.knowledge",
    "from_store": "cmf_core.recommend.knowledge",
    "optuna_callback": "cmf_core.recommend.knowledge",
    "record_trial": "cmf_core.recommend.knowledge",
    "shipped": "cmf_core.recommend.knowledge",
    "task_properties": "cmf_core.recommend.knowledge",
    "Recommendation": "cmf_core.recommend.recommender",
    "Seed": "cmf_core.recommend.recommender",
    "Strategy": "cmf_core.recommend.recommender",
    "knowledge_graph": "cmf_core.recommend.recommender",
    "recommend": "cmf_core.recommend.recommender",
    "build_estimator": "cmf_core.recommend.space",
    "suggest_config": "cmf_core.recommend.space",
    "Category": "cmf_core.recommend.task",
    "Modality": "cmf_core.recommend.task",
    "TaskDescription": "cmf_core.recommend.task",
    "describe_arrays": "cmf_core.recommend.task",
    "describe_csv": "cmf_core.recommend.task",
    "describe_series": "cmf_core.recommend.task",
    "describe_texts": "cmf_core.recommend.task",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "AdaptiveSeeder",
    "Category",
    "KnowledgeBase",
    "KnowledgeGraph",
    "Modality",
    "Recommendation",
    "Run",
    "Seed",
    "SimilarityMetric",
    "Strategy",
    "TaskDescription",
    "build_estimator",
    "describe_arrays",
    "describe_csv",
    "describe_series",
    "describe_texts",
    "from_store",
    "knowledge_graph",
    "optuna_callback",
    "recommend",
    "record_trial",
    "shipped",
    "suggest_config",
    "task_properties",
]
