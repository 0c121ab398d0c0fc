"""The recommend API on a hand-made knowledge base and on the shipped one."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from cmf_core.errors import InvalidInputError
from cmf_core.recommend import knowledge
from cmf_core.recommend.graph import SimilarityMetric
from cmf_core.recommend.knowledge import KnowledgeBase, Run
from cmf_core.recommend.recommender import Strategy, greedy_portfolio, recommend
from cmf_core.recommend.space import config_key, suggest_config
from cmf_core.recommend.task import describe_csv
from tests.core.recommend.conftest import A_BEST, B_BEST, CONFIGS, make_task

ROOT = Path(__file__).resolve().parents[3]
TELCO = ROOT / "examples" / "data" / "telco-churn" / "Telco-Customer-Churn.csv"


def test_seeds_come_from_similar_tasks(toy_kb: KnowledgeBase) -> None:
    rec = recommend(make_task("new", (0.2, 0.21, 0.9)), k=3, knowledge=toy_kb)
    assert rec.strategy is Strategy.SIMILAR_TASKS and not rec.fallback
    assert rec.configs()[0] == CONFIGS[A_BEST]
    assert {n.name for n in rec.neighbours} == {"a0", "a1", "a2"}
    top = rec.seeds[0]
    assert top.expected == pytest.approx(1.0, abs=0.02)
    assert {e.task_name for e in top.evidence} == {"a0", "a1", "a2"}
    assert all(e.rank == 1 and e.run_id for e in top.evidence)
    text = rec.explain()
    assert "3 similar classification task(s)" in text and "a0" in text
    assert str(top.evidence[0].run_id) in text
    lines = text.splitlines()  # the scale of the scores is said once, before the first seed
    first = next(i for i, x in enumerate(lines) if x.startswith("1. "))
    assert ("+1 = as good as a task's best run, 0 = its median run, below 0 = worse than its "
            "median run") in lines[first - 1]
    assert rec.to_dict()["seeds"][0]["config"] == CONFIGS[A_BEST]


def test_seed_scores_say_whether_they_are_above_or_below_the_median(toy_kb: KnowledgeBase
                                                                   ) -> None:
    """A seed's score read "expected -0.79": a newcomer took it for a broken metric. Each
    score now has its sign and says where it stands against the median past run; --json keeps
    the numbers and says the scale."""
    rec = recommend(make_task("new", (0.2, 0.21, 0.9)), k=len(CONFIGS), knowledge=toy_kb)
    lines = {x.split(". ", 1)[0]: x for x in rec.explain().splitlines() if x[:1].isdigit()}
    below = [i for i, s in enumerate(rec.seeds, 1) if s.expected < -0.005]
    above = [i for i, s in enumerate(rec.seeds, 1) if 0.005 <= s.expected < 0.995]
    assert below and above and rec.seeds[0].expected >= 0.995
    assert f": past tasks {rec.seeds[0].expected:+.2f} (best)" in lines["1"]
    for i in below:
        assert f": past tasks {rec.seeds[i - 1].expected:+.2f} (below median)" in lines[str(i)]
        assert f"{rec.seeds[i - 1].expected:+.2f}".startswith("-")
    for i in above:
        assert f": past tasks +{rec.seeds[i - 1].expected:.2f} (above median)" in lines[str(i)]
    data = rec.to_dict()
    assert data["score_scale"] == ("against past runs: +1 = as good as a task's best run, "
                                   "0 = its median run, below 0 = worse than its median run")
    assert [d["expected"] for d in data["seeds"]] == [round(s.expected, 4) for s in rec.seeds]


def test_dict_description_is_accepted(toy_kb: KnowledgeBase) -> None:
    rec = recommend(make_task("new", (0.8, 0.7, 0.2)).to_dict(), k=1, knowledge=toy_kb)
    assert rec.configs() == [CONFIGS[B_BEST]]


def test_no_similar_task_falls_back_to_portfolio_and_says_so(toy_kb: KnowledgeBase) -> None:
    rec = recommend(make_task("odd", (0.5, 0.95, 0.55)), k=2, knowledge=toy_kb)
    assert rec.strategy is Strategy.PORTFOLIO and rec.fallback
    assert "no task in the knowledge base is similar enough" in rec.message
    assert rec.neighbours == ()
    assert "the knowledge base has no" not in rec.message  # tabular tasks are there
    # data of a kind no task has (the toy tasks are all tabular): the message says so
    image = recommend(make_task("pics", (0.2, 0.2, 0.9), modality="image"), k=2,
                      knowledge=toy_kb, threshold=0.99)
    assert image.strategy is Strategy.PORTFOLIO
    assert ("(the knowledge base has no image classification task, only tabular ones)"
            in image.message), image.message
    # a portfolio of 2 covers both families' winners
    assert {config_key(c) for c in rec.configs()} == {config_key(CONFIGS[A_BEST]),
                                                     config_key(CONFIGS[B_BEST])}


def test_a_task_without_meta_features_gets_the_portfolio_and_is_told_why(
        toy_kb: KnowledgeBase) -> None:
    rec = recommend({"name": "bare", "category": "classification"}, k=2, knowledge=toy_kb)
    assert rec.strategy is Strategy.PORTFOLIO
    assert rec.message.startswith("the task has no meta-features (describe its data to find "
                                  "similar tasks); seeds are a portfolio")


def test_unknown_category_in_kb_gives_no_seeds(toy_kb: KnowledgeBase) -> None:
    rec = recommend(make_task("r", (0.2, 0.2, 0.9), category="regression"), knowledge=toy_kb)
    assert rec.strategy is Strategy.NONE and rec.seeds == ()
    assert "has no regression task" in rec.message


def test_bad_input_raises_or_reports(toy_kb: KnowledgeBase) -> None:
    bad = {"name": "t", "category": "segmentation"}
    with pytest.raises(InvalidInputError, match="unknown task category 'segmentation'"):
        recommend(bad, knowledge=toy_kb)
    rec = recommend(bad, knowledge=toy_kb, strict=False)  # what a pipeline step uses
    assert rec.seeds == () and rec.error and "segmentation" in rec.message
    with pytest.raises(InvalidInputError, match="k=0"):
        recommend(make_task("n", (0.2, 0.2, 0.9)), k=0, knowledge=toy_kb)
    # a k computed with numpy is a whole number too (was "k=np.int64(2) must be a whole number")
    rec = recommend(make_task("n", (0.2, 0.2, 0.9)), k=np.int64(2), knowledge=toy_kb)
    assert len(rec.seeds) == 2 and len(rec.seeder(k=np.int64(2)).to_dict()["configs"]) > 0


def test_a_knowledge_file_path_or_a_metric_name_is_a_clear_error(
        toy_kb: KnowledgeBase, tmp_path: Path) -> None:
    task = make_task("n", (0.2, 0.2, 0.9))
    path = knowledge.save(toy_kb, tmp_path / "kb.json.gz")
    with pytest.raises(InvalidInputError, match="is not a KnowledgeBase"):
        recommend(task, knowledge=str(path))  # was AttributeError, even with strict=False
    rec = recommend(task, knowledge=str(path), strict=False)
    assert rec.seeds == () and "knowledge.load(path)" in rec.message
    with pytest.raises(InvalidInputError, match="metric='cosine' is not a SimilarityMetric"):
        recommend(task, knowledge=toy_kb, metric="cosine")  # type: ignore[arg-type]


def test_greedy_portfolio_covers_different_winners() -> None:
    U = np.array([[1.0, 0.0, 0.6], [0.0, 1.0, 0.6], [0.0, 1.0, 0.6]])
    assert greedy_portfolio(U, [1, 1, 1], 1) == [1]  # best on two of three tasks
    assert greedy_portfolio(U, [1, 1, 1], 2) == [1, 0]  # then the one that covers the rest
    assert greedy_portfolio(U, [5, 1, 1], 1) == [0]
    assert greedy_portfolio(np.array([[np.nan, 0.5]]), [1], 1) == [1]


def test_set_cover_rule_prefers_hits_over_good_averages() -> None:
    # column 2 is decent everywhere but hits nowhere; 0 and 1 each hit one task
    U = np.array([[0.97, 0.0, 0.9], [0.0, 0.96, 0.9], [0.1, 0.1, 0.9]])
    assert greedy_portfolio(U, [1, 1, 1], 1) == [2]  # sum of best normalised scores
    assert greedy_portfolio(U, [1, 1, 1], 2, level=0.95) == [0, 1]  # covers both hits
    assert greedy_portfolio(U, [1, 3, 1], 1, level=0.95) == [1]  # heavier task first
    # once every task that can be hit is hit, the soft objective decides
    assert greedy_portfolio(U, [1, 1, 1], 3, level=0.95) == [0, 1, 2]
    with pytest.raises(InvalidInputError, match="weights"):
        greedy_portfolio(U, [1, 1], 1, level=0.95)


def test_enqueue_puts_seeds_first(toy_kb: KnowledgeBase) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rec = recommend(make_task("new", (0.2, 0.2, 0.9)), k=3, knowledge=toy_kb)
    study = optuna.create_study(direction="maximize")
    assert rec.enqueue(study) == 3
    seen = []
    study.optimize(lambda t: seen.append(suggest_config(t, "classification")) or 0.0,
                   n_trials=4)
    assert seen[:3] == rec.configs()


@pytest.mark.skipif(not knowledge.shipped().tasks, reason="shipped knowledge base not built")
def test_shipped_knowledge_base_recommends_for_telco() -> None:
    task = describe_csv(TELCO, category="classification", target="Churn")
    rec = recommend(task, k=5)
    assert len(rec.seeds) == 5
    assert rec.knowledge_tasks >= 20
    assert rec.strategy in (Strategy.SIMILAR_TASKS, Strategy.PORTFOLIO)
    assert all(s.config["model"] in {"logreg", "knn", "svm", "rf", "hgb"} for s in rec.seeds)
    # the meta-model is fitted once per knowledge base and category, then reused (how long a
    # call takes is a benchmark's business, not a test's: this machine is shared)
    from cmf_core.recommend.surrogate import meta_model

    kb = knowledge.shipped()
    assert meta_model(kb, "classification") is meta_model(kb, "classification")
    assert recommend(task, k=5).configs() == rec.configs()


def test_without_scikit_learn_the_seeds_come_from_neighbours_and_it_says_so(
        toy_kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> None:
    task = make_task("new", (0.2, 0.21, 0.9))
    assert "meta-model" in recommend(task, k=3, knowledge=toy_kb).message  # it is installed
    # as if the recommend extra were not installed (a fresh knowledge base: no cached model)
    for name in ["sklearn", *(m for m in sys.modules if m.startswith("sklearn."))]:
        monkeypatch.setitem(sys.modules, name, None)
    fresh = KnowledgeBase(list(toy_kb.tasks.values()), toy_kb.runs, dict(toy_kb.calibration))
    rec = recommend(task, k=3, knowledge=fresh)
    assert rec.configs()[0] == CONFIGS[A_BEST]
    assert ("; not ranked with a meta-model, which needs scikit-learn "
            "(pip install 'cmf-foundation[recommend]')") in rec.message


def test_the_same_task_run_before_gives_the_first_seed(toy_kb: KnowledgeBase) -> None:
    # "a0" ran before and peaked at A_BEST; a re-run of a0 whose own past best is elsewhere
    # (a sample of the same data, say) must start from its own best, not the neighbours' cover
    from cmf_core.recommend.knowledge import Run

    again = make_task("a0-again", (0.2, 0.2, 0.9))
    own_best = 7
    kb = KnowledgeBase([again], {again.id: [
        Run(c, 0.9 if j == own_best else 0.5, f"r{j}", 0.1)
        for j, c in enumerate(CONFIGS)]}).merge(toy_kb)
    rec = recommend(again, k=3, knowledge=kb, use_meta_model=False)
    assert rec.configs()[0] == CONFIGS[own_best]
    assert CONFIGS[A_BEST] in rec.configs()  # the similar tasks' winner still follows
    assert "first the best run of a0-again (this task, run before)" in rec.message
    # a task that is only similar (0.94-0.95 to the b tasks) gets their cover as before
    other = recommend(make_task("b-like", (0.75, 0.75, 0.25)), k=1, knowledge=kb,
                      use_meta_model=False)
    assert other.configs() == [CONFIGS[B_BEST]] and "first the best run" not in other.message


def test_explanations_agree_with_their_numbers(toy_kb: KnowledgeBase) -> None:
    # a task described exactly like a0: nothing differs, and the text does not say otherwise
    twin = make_task("a0-twin", (0.2, 0.2, 0.9))
    rec = recommend(twin, k=1, knowledge=toy_kb, use_meta_model=False)
    line = next(x for x in rec.explain().splitlines() if x.startswith("  a0:"))
    assert line.endswith("; no meta-feature differs)"), line
    near = next(n for n in rec.neighbours if n.name == "a1")
    assert near.differ and "differs most in" in rec.explain()
    # just below a threshold of 1: enough digits to show the closest task is below it
    below = recommend(make_task("a0-near", (0.2, 0.2, 0.9005)), k=1, knowledge=toy_kb,
                      threshold=1.0, use_meta_model=False)
    closest, limit = re.search(r"closest: a0 at ([0-9.]+)\), below threshold ([0-9.]+)",
                               below.message).groups()
    assert float(closest) < float(limit) == 1.0 and len(closest) > 4, below.message
    far = recommend(make_task("far", (0.5, 0.95, 0.55)), k=1, knowledge=toy_kb,
                    threshold=0.99, use_meta_model=False)
    assert "at 0.7" in far.message and "below threshold 0.99;" in far.message, far.message


def test_each_seed_says_why_it_was_chosen(toy_kb: KnowledgeBase) -> None:
    # set cover at 0.95 over all six tasks (no task is similar): the first seed hits one
    # family, the second the other family, which the first misses
    toy_kb.calibration["level"] = 0.95
    rec = recommend(make_task("odd", (0.5, 0.95, 0.55)), k=3, knowledge=toy_kb,
                    use_meta_model=False)
    first, second, third = (s.reason for s in rec.seeds)
    fam = "a" if rec.configs()[0] == CONFIGS[A_BEST] else "b"
    other = "b" if fam == "a" else "a"
    assert first == f"a hit on {fam}0, {fam}1, {fam}2 (50% of the scenario weight)"
    assert second == (f"a hit on {other}0, {other}1, {other}2 that the seeds before it miss "
                      "(50% of the scenario weight)")
    assert third.startswith("every scenario it could hit is hit by a seed before it")
    assert f"     why: {second}" in rec.explain()
    assert rec.to_dict()["seeds"][1]["reason"] == second
    # the sum rule (no level): the gain in the best normalised score
    del toy_kb.calibration["level"]
    rec = recommend(make_task("odd", (0.5, 0.95, 0.55)), k=2, knowledge=toy_kb)
    assert rec.seeds[0].reason.startswith("the best weighted mean normalised score (")
    assert rec.seeds[1].reason.startswith("raises the similar tasks' weighted best "
                                          "normalised score by 0.")


@pytest.mark.skipif(not knowledge.shipped().tasks, reason="shipped knowledge base not built")
def test_shipped_seeds_name_the_meta_model_trees_behind_them() -> None:
    # the shipped calibration ranks seeds with the meta-model's trees alone (neighbour share
    # 0): a seed with a low mean score is there because some trees predict a hit with it
    task = describe_csv(TELCO, category="classification", target="Churn")
    rec = recommend(task, k=5)
    from cmf_core.recommend.surrogate import N_TREES

    # first the best runs of the shipped telco-churn (a sample of this CSV: its 2 hits) ...
    assert rec.seeds[0].reason.startswith("the best run of telco-churn (taken for the same")
    assert rec.seeds[1].reason == "the 2nd best run of telco-churn, the same task"
    # ... then the trees
    assert all(f" of {N_TREES} meta-model trees that the seeds before it miss" in s.reason
               for s in rec.seeds[2:]), [s.reason for s in rec.seeds]


def test_the_same_tasks_near_best_runs_go_first_then_the_rule(toy_kb: KnowledgeBase) -> None:
    # a0 re-run: its own runs peak at 7, and 3 and 5 are within 95% of the gap to the median;
    # a fresh sample of the same data ranks its best configurations early, so those go first
    from cmf_core.recommend.adaptive import AdaptiveSeeder

    again = make_task("a0-again", (0.2, 0.2, 0.9))
    score = {7: 0.9, 3: 0.89, 5: 0.885, 9: 0.85}
    kb = KnowledgeBase([again], {again.id: [
        Run(c, score.get(j, 0.5), f"r{j}", 0.1) for j, c in enumerate(CONFIGS)]}).merge(toy_kb)
    rec = recommend(again, k=4, knowledge=kb, use_meta_model=False)
    assert rec.configs() == [CONFIGS[7], CONFIGS[3], CONFIGS[5], CONFIGS[A_BEST]]
    assert rec.message.endswith("; first the best run of a0-again (this task, run before), "
                                "then its next 2 best runs")
    # the message counts only the runs among the k seeds
    one = recommend(again, k=1, knowledge=kb, use_meta_model=False)
    assert one.message.endswith("; first the best run of a0-again (this task, run before)")
    two = recommend(again, k=2, knowledge=kb, use_meta_model=False)
    assert two.message.endswith("(this task, run before), then its next best run")
    assert [s.reason for s in rec.seeds[1:3]] == [
        "the 2nd best run of a0-again, the same task",
        "the 3rd best run of a0-again, the same task"]
    assert rec.seeds[3].reason.startswith("raises the similar tasks'")  # the rule takes over
    # the adaptive seeder gives the same prefix whatever the scores, and says so
    seeder = rec.seeder()
    seen: dict[str, float] = {}
    for _ in range(3):
        config = seeder.next_config(seen)
        seen[config_key(config)] = 0.1  # poor scores do not cut the prefix short
    assert seeder.given == rec.configs()[:3]
    assert seeder.reasons == [s.reason for s in rec.seeds[:3]]  # worded as the static seeds
    # the prefix and its reasons travel with the state
    state = rec.seeder().to_dict()
    assert state["prefix"] == [CONFIGS.index(c) for c in rec.configs()[:3]]
    assert state["prefix_reasons"] == [s.reason for s in rec.seeds[:3]]
    again_seeder = AdaptiveSeeder.from_dict(json.loads(json.dumps(state)))
    again_seeder.next_config({})
    assert again_seeder.next_config({}) == CONFIGS[3]
    assert again_seeder.reasons == [s.reason for s in rec.seeds[:2]]
    # a state written before them ("first" only, no reasons) still loads, generically worded
    old = {k: v for k, v in state.items() if k not in ("prefix", "prefix_reasons")}
    old_seeder = AdaptiveSeeder.from_dict(old)
    assert old_seeder.next_config({}) == CONFIGS[7]
    assert old_seeder.reasons == ["the best run of the same task, run before"]
    with pytest.raises(InvalidInputError, match="prefix_reasons must be a list of 3 strings"):
        AdaptiveSeeder.from_dict({**state, "prefix_reasons": ["only one"]})


def test_a_sample_of_a_task_run_before_is_the_same_task(toy_kb: KnowledgeBase) -> None:
    # the same data at another size: n_rows (and what depends on it) differ, the rest match
    sample = make_task("c-sample", (0.2, 0.5, 0.5))
    kb = KnowledgeBase([sample], {sample.id: [
        Run(c, 0.9 if j == 7 else 0.5, f"s{j}", 0.1) for j, c in enumerate(CONFIGS)]})
    full = make_task("c-full", (0.6, 0.5, 0.5))  # three times the rows
    metric = SimilarityMetric("uniform", {"n_rows": 1, "n_features": 1, "class_balance": 1})
    assert metric(full, sample) < 0.8  # not even a neighbour over every meta-feature ...
    kb = kb.merge(toy_kb)
    kb.calibration = {"metric": metric.to_dict(), "threshold": 0.7}
    rec = recommend(full, k=2, knowledge=kb, use_meta_model=False)
    assert rec.configs()[0] == CONFIGS[7]  # ... but its best run goes first
    why = ("the best run of c-sample (taken for the same data: 1.000 similar over the "
           "size-free meta-features)")
    assert rec.message.endswith(f"; first {why}") and rec.seeds[0].reason == why
    seeder = rec.seeder()  # the adaptive seeder starts there too, and says so
    assert seeder.next_config({}) == CONFIGS[7]
    assert seeder.reasons == [why]
    # another class balance is other data, whatever the size
    other = recommend(make_task("d", (0.6, 0.5, 0.2)), k=1, knowledge=kb,
                      use_meta_model=False)
    assert "c-sample" in [n.name for n in other.neighbours]
    assert "first the best run" not in other.message


def test_size_free_metric_leaves_out_size_features() -> None:
    metric = SimilarityMetric("uniform", {"n_rows": 1, "class_balance": 1})
    size_free = metric.without({"n_rows", "dimensionality"})
    assert dict(size_free.weights) == {"class_balance": 1.0}
    assert metric.without({"n_rows", "class_balance"}) is metric  # nothing would be left


@pytest.mark.skipif(not knowledge.shipped().tasks, reason="shipped knowledge base not built")
def test_full_telco_csv_starts_from_its_sample_in_the_shipped_knowledge_base() -> None:
    # the shipped telco-churn task is a 1,500-row sample of the CSV; the full CSV (7,043 rows)
    # is the same task, and no two tasks of different groups pass for one
    from cmf_core.recommend.recommender import SAME_TASK_SIMILARITY, SIZE_FEATURES

    kb = knowledge.shipped()
    rec = recommend(describe_csv(TELCO, category="classification", target="Churn"), k=3)
    [telco] = [t for t in kb.tasks.values() if t.name == "telco-churn"]
    best = max(kb.runs[telco.id], key=lambda r: r.score)
    assert rec.configs()[0] == dict(best.config)
    assert "first the best run of telco-churn (taken for the same data: 0.986" in rec.message
    size_free = SimilarityMetric.from_dict(kb.calibration["metric"]).without(SIZE_FEATURES)
    tasks = list(kb.tasks.values())
    cross = [size_free(a, b) for i, a in enumerate(tasks) for b in tasks[i + 1:]
             if a.category == b.category and a.group != b.group]
    assert max(cross) < SAME_TASK_SIMILARITY


def test_models_keeps_the_seeds_in_the_users_search_space(toy_kb: KnowledgeBase) -> None:
    """A user's own Optuna space with fewer families: every seed, static or adaptive, is one
    the objective can run (a seed of another family used to fail the first trial with
    Optuna's "'logreg' not in ('knn',)" and stop ``study.optimize``)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    task = make_task("new", (0.2, 0.21, 0.9))  # like the a tasks, whose best is a logreg
    assert recommend(task, k=3, knowledge=toy_kb).configs()[0]["model"] == "logreg"
    rec = recommend(task, k=3, knowledge=toy_kb, models=["knn", "xgb"])
    assert [c["model"] for c in rec.configs()] == ["knn"] * 3
    assert "only knn as asked (xgb: no recorded runs, so no seeds)" in rec.message

    def objective(trial: optuna.Trial) -> float:
        model = trial.suggest_categorical("model", ["knn", "xgb"])
        if model == "knn":
            trial.suggest_int("knn.n_neighbors", 1, 41)
            trial.suggest_categorical("knn.weights", ["uniform", "distance"])
        return 0.5

    for enqueue in ("static", "adaptive"):
        study = optuna.create_study(direction="maximize")
        if enqueue == "static":
            rec.enqueue(study)
            callbacks = []
        else:
            seeder = rec.seeder()
            seeder.enqueue_first(study)
            callbacks = [seeder.optuna_callback()]
        study.optimize(objective, n_trials=5, callbacks=callbacks)
        assert all(t.state is optuna.trial.TrialState.COMPLETE for t in study.trials)
        assert study.trials[0].params == rec.optuna_params()[0]
        assert all(t.params["model"] == "knn" for t in study.trials[:3])
    # a single name is one family; a space with none of the known families is a clear error
    assert {c["model"] for c in recommend(task, k=2, knowledge=toy_kb,
                                          models="logreg").configs()} == {"logreg"}
    with pytest.raises(InvalidInputError, match=r"none of the models xgb has runs .* the "
                       r"families there are: knn, logreg"):
        recommend(task, knowledge=toy_kb, models=["xgb"])
    with pytest.raises(InvalidInputError, match="non-empty list"):
        recommend(task, knowledge=toy_kb, models=[])
    cold = recommend(task, knowledge=toy_kb, models=["xgb"], strict=False)
    assert cold.seeds == () and "none of the models xgb" in cold.message


def test_models_with_the_same_task_run_before_start_from_its_best_run_of_them(
        toy_kb: KnowledgeBase) -> None:
    again = make_task("a0-again", (0.2, 0.2, 0.9))
    kb = KnowledgeBase([again], {again.id: [
        Run(c, 0.9 if j == 2 else 0.7 if j == 17 else 0.5, f"r{j}", 0.1)
        for j, c in enumerate(CONFIGS)]}).merge(toy_kb)
    rec = recommend(again, k=2, knowledge=kb, use_meta_model=False, models=["knn"])
    assert rec.configs()[0] == CONFIGS[17]  # its best knn run, not its best run (a logreg)
    assert "first the best run of those models of a0-again" in rec.message
    assert rec.seeds[0].reason.startswith("the best run of those models of a0-again")
    assert all(c["model"] == "knn" for c in rec.configs())
