"""Parameters and XCom values made safe to record: bounded, JSON-ready, secrets masked."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from cmf_airflow.values import MAX_ITEMS, MAX_STR, bind_callable_args, jsonable, redact, summarise


class Opaque:
    def __repr__(self) -> str:  # never called: objects are tagged, not printed
        raise AssertionError("repr called")


def test_jsonable_bounds_everything() -> None:
    value = {"n": 1, "x": float("nan"), "when": dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
             "path": Path("/data"), "long": "a" * (MAX_STR + 5), "many": list(range(200)),
             "obj": Opaque(), "deep": {"a": {"b": {"c": {"d": {"e": 1}}}}}}
    out = jsonable(value)
    json.dumps(out)
    assert out["n"] == 1 and out["x"] == "nan" and out["path"] == "/data"
    assert out["when"] == "2026-01-02T00:00:00+00:00"
    assert len(out["long"]) == MAX_STR + 3
    assert len(out["many"]) == MAX_ITEMS + 1 and out["many"][-1] == "... 150 more"
    assert out["obj"].startswith("<") and out["obj"].endswith(".Opaque>")
    assert out["deep"]["a"]["b"]["c"] == "<builtins.dict>"


def test_summarise_small_and_large_values() -> None:
    assert summarise(0.91) == {"type": "builtins.float", "value": 0.91}
    assert summarise({"rows": 3}) == {"type": "builtins.dict", "len": 1, "keys": ["rows"],
                                      "value": {"rows": 3}}
    big = summarise(list(range(5000)))
    assert big["len"] == 5000 and "value" not in big and big["json_len"] > 0
    # a large string (a CSV or JSON payload): its size, not only that of the cut copy
    text = summarise("x" * 200_000)
    assert text["type"] == "builtins.str" and text["len"] == 200_000 and "value" not in text
    assert summarise("small") == {"type": "builtins.str", "value": "small"}


def test_arguments_are_named_by_the_callable() -> None:
    def train(data, lr=0.1, *rest, epochs=3):
        pass

    assert bind_callable_args(train, ["d.csv", 0.01], {"epochs": 5}) == {
        "data": "d.csv", "lr": 0.01, "epochs": 5}
    assert bind_callable_args(None, [1, 2], {}) == {"arg0": 1, "arg1": 2}


def test_secrets_are_masked_like_airflow_masks_them() -> None:
    assert redact("hunter2", "password") != "hunter2"
    assert redact({"api_key": "abc", "rows": 3}, "conf")["rows"] == 3


class LazyXComSequence:
    """Stands in for Airflow's ``LazyXComSequence``, whose items come from the task runner's
    supervisor (not there outside a running task): counts what is read of it."""

    def __init__(self, values: list[int], broken: bool = False) -> None:
        self.values, self.broken, self.reads = values, broken, 0

    def __len__(self) -> int:
        self.reads += 1
        if self.broken:
            raise RuntimeError("supervisor gone")
        return len(self.values)

    def __getitem__(self, key: slice) -> list[int]:
        self.reads += 1
        return self.values[key]


def test_a_reduced_mapped_result_is_recorded_as_its_values_bounded() -> None:
    from cmf_airflow.facts import lazy_values

    many = LazyXComSequence(list(range(MAX_ITEMS + 7)))
    assert lazy_values(many, "xs") == [*range(MAX_ITEMS), "... 7 more"]
    assert many.reads == 2  # its length and one slice, never item by item
    assert lazy_values(LazyXComSequence([1, 2]), "xs") == [1, 2]
    # unreadable: its tag, never an error
    assert lazy_values(LazyXComSequence([1], broken=True), "xs").endswith("LazyXComSequence>")
