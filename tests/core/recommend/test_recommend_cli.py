"""`cmf recommend` (recommend_command) on real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cmf_core.errors import InvalidInputError
from cmf_core.recommend import knowledge
from cmf_core.recommend.cli import recommend_command
from cmf_core.store import open_store
from tests.core.recommend.conftest import A_BEST, CONFIGS, make_task

ROOT = Path(__file__).resolve().parents[3]
TELCO = ROOT / "examples" / "data" / "telco-churn" / "Telco-Customer-Churn.csv"


def _app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command("recommend")(recommend_command)
    app.command("noop")(lambda: None)  # keep "recommend" a sub-command, as in the cmf app
    return app


def test_task_file_and_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    task = make_task("stored", (0.2, 0.2, 0.9))
    with open_store(url, "site-a") as store:
        for j, cfg in enumerate(CONFIGS):
            knowledge.record_trial(store, task, cfg, 0.8 - 0.01 * abs(j - A_BEST))
    query = tmp_path / "task.json"
    query.write_text(json.dumps(make_task("new", (0.2, 0.21, 0.9)).to_dict()))
    result = CliRunner().invoke(_app(), ["recommend", "--task", str(query), "--store", url,
                                         "--no-shipped", "-k", "2", "--threshold", "0.9",
                                         "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["strategy"] == "similar_tasks"
    assert out["seeds"][0]["config"] == CONFIGS[A_BEST]
    assert out["seeds"][0]["optuna_params"]["model"] == CONFIGS[A_BEST]["model"]
    assert out["neighbours"][0]["name"] == "stored"
    assert out["seeds"][0]["expected"] == pytest.approx(1.0, abs=0.02)  # numbers as they are
    assert "0 = its median run, below 0 = worse than its median run" in out["score_scale"]


@pytest.mark.skipif(not knowledge.shipped().tasks, reason="shipped knowledge base not built")
def test_dataset_with_shipped_knowledge_base() -> None:
    result = CliRunner().invoke(_app(), ["recommend", str(TELCO), "--category",
                                         "classification", "--target", "Churn", "-k", "3"])
    assert result.exit_code == 0, result.output
    assert "1. " in result.output and "3. " in result.output
    # the full CSV is the shipped telco-churn sample's task: its best run first, and why
    assert ("first the best run of telco-churn (taken for the same data: 0.986 similar over the "
            "size-free meta-features)") in " ".join(result.output.split())
    assert result.output.count("     why: ") == 3


@pytest.mark.skipif(not knowledge.shipped().tasks, reason="shipped knowledge base not built")
def test_seeder_file_for_a_search_elsewhere(tmp_path: Path) -> None:
    from cmf_core.recommend import AdaptiveSeeder, describe_csv, recommend

    out = tmp_path / "seeder.json"
    result = CliRunner().invoke(_app(), ["recommend", str(TELCO), "--category",
                                         "classification", "--target", "Churn", "-k", "3",
                                         "--seeder", str(out), "--no-shipped"])
    # no knowledge base at all: no seeds, and a seeder file that gives none
    assert result.exit_code == 0, result.output
    assert AdaptiveSeeder.from_dict(json.loads(out.read_text())).next_config({}) is None
    result = CliRunner().invoke(_app(), ["recommend", str(TELCO), "--category",
                                         "classification", "--target", "Churn", "-k", "3",
                                         "--seeder", str(out)])
    assert result.exit_code == 0, result.output
    rebuilt = AdaptiveSeeder.from_dict(json.loads(out.read_text()))
    here = recommend(describe_csv(TELCO, category="classification", target="Churn"), k=3)
    assert rebuilt.k == 3 and rebuilt.next_config({}) == here.configs()[0]
    bad = CliRunner().invoke(_app(), ["recommend", str(TELCO), "--category", "classification",
                                      "--target", "Churn", "--seeder", str(tmp_path)])
    assert isinstance(bad.exception, InvalidInputError)
    assert "cannot write the seeder" in str(bad.exception)


def test_errors_are_cmf_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(_app(), ["recommend"])
    assert isinstance(result.exception, InvalidInputError)
    assert "give either a dataset" in str(result.exception)
    result = runner.invoke(_app(), ["recommend", str(TELCO), "--target", "Churn"])
    assert "--category is required" in str(result.exception)
    result = runner.invoke(_app(), ["recommend", str(TELCO), "--category", "ranking",
                                    "--target", "Churn"])
    assert isinstance(result.exception, InvalidInputError)
    assert "unknown task category 'ranking'" in str(result.exception)


def test_a_missing_store_is_an_error_not_a_new_store(tmp_path: Path) -> None:
    from cmf_core.errors import StoreError

    query = tmp_path / "task.json"
    query.write_text(json.dumps(make_task("new", (0.2, 0.21, 0.9)).to_dict()))
    typo = tmp_path / "typo" / "cmf.db"
    result = CliRunner().invoke(_app(), ["recommend", "--task", str(query), "--store",
                                         f"sqlite:///{typo}"])
    assert isinstance(result.exception, StoreError)
    assert str(result.exception).startswith(f"no CMF store at {typo}")
    assert not typo.parent.exists()


def test_a_text_regression_target_or_huge_values_are_named(tmp_path: Path) -> None:
    runner = CliRunner()
    text = tmp_path / "text.csv"
    text.write_text("a,b,y\n1,2,x\n2,3,y\n3,1,z\n4,5,x\n")
    result = runner.invoke(_app(), ["recommend", str(text), "--category", "regression",
                                    "--target", "y", "--no-shipped"])
    assert isinstance(result.exception, InvalidInputError)
    assert str(result.exception) == ("target of 'text' holds the text 'x'; a regression target "
                                     "must be numeric (or is this a classification task?)")
    huge = tmp_path / "huge.csv"
    huge.write_text("a,b,y\n1,1e308,1\n2,-1.5e308,2\n3,1.7e308,3\n4,5,4\n5,7,5\n")
    result = runner.invoke(_app(), ["recommend", str(huge), "--category", "regression",
                                    "--target", "y", "--no-shipped"])
    assert isinstance(result.exception, InvalidInputError)
    assert str(result.exception) == (
        "input column 'b' of 'huge' holds values as large as 1.7e+308; the statistics need "
        "values within +-1e+150: rescale it")


def test_threshold_is_a_similarity_from_0_to_1(tmp_path: Path) -> None:
    from cmf_core.recommend.recommender import recommend

    query = tmp_path / "task.json"
    query.write_text(json.dumps(make_task("new", (0.2, 0.21, 0.9)).to_dict()))
    for value in ("5", "nan", "-0.1"):
        result = CliRunner().invoke(_app(), ["recommend", "--task", str(query), "--threshold",
                                             value])
        assert result.exit_code == 2, value
        assert "Invalid value for '--threshold'" in result.output, value
    for bad in (5.0, float("nan"), -0.1, True):
        with pytest.raises(InvalidInputError, match=r"must be a similarity from 0 to 1"):
            recommend(make_task("new", (0.2, 0.21, 0.9)), threshold=bad)


def test_a_bad_task_file_or_a_tiny_landmark_dataset_is_a_clear_error(tmp_path: Path) -> None:
    runner = CliRunner()
    folder = tmp_path / "task.json"
    folder.mkdir()  # a directory where the task file should be
    result = runner.invoke(_app(), ["recommend", "--task", str(folder)])
    assert isinstance(result.exception, InvalidInputError)
    assert f"task file {folder} cannot be read" in str(result.exception)
    listed = tmp_path / "listed.json"
    listed.write_text('{"category": "classification", "meta_features": [1]}')
    result = runner.invoke(_app(), ["recommend", "--task", str(listed)])
    assert isinstance(result.exception, InvalidInputError)
    assert "meta_features of task 'task' must be a mapping" in str(result.exception)
    # landmarks on two rows: no 3-fold scores (was sklearn's ValueError), still seeds
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("a,b,y\n1,2,0.5\n3,5,1.5\n")
    result = runner.invoke(_app(), ["recommend", str(tiny), "--category", "regression",
                                    "--target", "y", "--landmarks", "--no-shipped"])
    assert result.exit_code == 0, result.output
    assert "regression" in result.output


def test_models_option_keeps_the_seeds_in_those_families(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    task = make_task("stored", (0.2, 0.2, 0.9))
    with open_store(url, "site-a") as store:
        for j, cfg in enumerate(CONFIGS):
            knowledge.record_trial(store, task, cfg, 0.8 - 0.01 * abs(j - A_BEST))
    query = tmp_path / "task.json"
    query.write_text(json.dumps(make_task("new", (0.2, 0.21, 0.9)).to_dict()))
    args = ["recommend", "--task", str(query), "--store", url, "--no-shipped", "-k", "2",
            "--json"]
    result = CliRunner().invoke(_app(), [*args, "--models", "knn, xgb"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert [s["config"]["model"] for s in out["seeds"]] == ["knn", "knn"]
    assert "only knn as asked" in out["message"]
    result = CliRunner().invoke(_app(), [*args, "--models", "xgb"])
    assert isinstance(result.exception, InvalidInputError)
    assert "the families there are: knn, logreg" in str(result.exception)
