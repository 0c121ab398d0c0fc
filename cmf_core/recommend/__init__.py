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
