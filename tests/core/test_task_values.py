"""Task values made safe to record (shared by the orchestrator adapters)."""

from __future__ import annotations

import datetime as dt
import enum
import os
from pathlib import PurePosixPath

import numpy as np
import pytest

from cmf_core.task_values import (
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_STR,
    hide_password,
    jsonable,
    jsonable_lossy,
    params,
    redact,
    sensitive,
)


class Colour(enum.Enum):
    RED = "red"


class Opaque:
    def __repr__(self) -> str:  # must never be called
        raise AssertionError("repr called")


def test_plain_values_kept_and_nothing_marked_lossy() -> None:
    value = {"a": [1, 2.5, None, True], "b": {"c": "x"}, "when": dt.date(2026, 11, 27),
             "p": PurePosixPath("/data/x.csv"), "colour": Colour.RED, "n": np.float64(0.5),
             "i": np.int64(3), "nan": float("nan")}
    data, lossy = jsonable_lossy(value)
    assert data == {"a": [1, 2.5, None, True], "b": {"c": "x"}, "when": "2026-11-27",
                    "p": "/data/x.csv", "colour": "red", "n": 0.5, "i": 3, "nan": "nan"}
    assert not lossy


def test_objects_tagged_and_sizes_bounded() -> None:
    assert jsonable(Opaque()) == f"<{__name__}.Opaque>"
    assert jsonable(np.zeros(3)) == "<numpy.ndarray>"
    data, lossy = jsonable_lossy({"s": "x" * (MAX_STR + 5), "l": list(range(MAX_ITEMS + 3))})
    assert lossy and data["s"].endswith("...") and len(data["s"]) == MAX_STR + 3
    assert data["l"][-1] == "... 3 more" and len(data["l"]) == MAX_ITEMS + 1
    deep: dict = {}
    node = deep
    for _ in range(MAX_DEPTH + 2):
        node["k"] = {}
        node = node["k"]
    text = str(jsonable(deep))
    assert "<builtins.dict>" in text
    assert jsonable({3, 1, 2}) == [1, 2, 3]


def test_lone_surrogates_become_escapes() -> None:
    name = os.fsdecode(b"caf\xe9.csv")  # what os.listdir gives for a non-UTF-8 file name
    assert jsonable({"path": name, "other": "\ud800", "ok": "héllo"}) == {
        "path": "caf\\xe9.csv", "other": "\\ud800", "ok": "héllo"}



def test_nul_becomes_an_escape() -> None:
    """PostgreSQL text refuses NUL: a recorded task value writes it out, as it does a lone
    surrogate, rather than the record being refused."""
    assert jsonable({"a\x00": "b\x00\ud800"}) == {"a\\x00": "b\\x00\\ud800"}


class NoText:
    """A set member whose ``__str__`` fails or would take long: it must never be called."""

    def __str__(self) -> str:
        raise AssertionError("str called")

    __repr__ = __str__
    __hash__ = object.__hash__


def test_a_set_of_strings_and_tuples_has_one_order_in_every_process() -> None:
    """String hashes differ per process (PYTHONHASHSEED), so a set's iteration order does too:
    the same parameters must be recorded the same way by every run."""
    import json
    import os
    import subprocess
    import sys

    code = ("import json; from cmf_core.task_values import jsonable; "
            "print(json.dumps(jsonable({('x', 1), ('y', 2), 'z', 3, ('w', 0)})))")
    outs = set()
    for seed in ("1", "2", "3", "4"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, check=True)
        outs.add(done.stdout.strip())
    assert len(outs) == 1, outs
    assert json.loads(outs.pop()) == [3, "z", ["w", 0], ["x", 1], ["y", 2]]


def test_sets_and_keys_never_call_user_str() -> None:
    assert jsonable({NoText(), NoText()}) == ["<tests.core.test_task_values.NoText>"] * 2
    assert jsonable({3, 1, 2}) == [1, 2, 3] and jsonable(frozenset({"b", "a"})) == ["a", "b"]
    # mixed built-in values: by type name, then repr (a stable order in every process)
    assert jsonable({"a", 1, ("b", 2), ("a", 3)}) == [1, "a", ["a", 3], ["b", 2]]
    assert jsonable({NoText(): 1, 2: 2}) == {"<tests.core.test_task_values.NoText>": 1, "2": 2}


@pytest.mark.parametrize(("name", "secret"), [
    ("token", True), ("auth_token", True), ("GITHUB_TOKEN", True), ("apiKey", True),
    ("APIKey", True), ("api_key", True), ("client_secret", True), ("db_passwd", True),
    ("Authorization", True), ("privateKey", True),
    ("max_tokens", False), ("tokenizer", False), ("n_tokens", False), ("access_key", False),
    ("lr", False), ("keyword", False),
])
def test_secret_names(name: str, secret: bool) -> None:
    assert sensitive(name) is secret


def test_secrets_are_redacted_at_any_depth() -> None:
    got = params({"peer": "http://x", "token": "s3cret", "max_tokens": 5,
                  "cfg": {"db": {"password": "p", "host": "h"}}, "api_key": None})
    assert got == {"peer": "http://x", "token": "***", "max_tokens": 5,
                   "cfg": {"db": {"password": "***", "host": "h"}}, "api_key": None}
    assert jsonable({"x": [{"secret": object()}]}) == {"x": [{"secret": "***"}]}
    assert redact({"a": [{"apiKey": "k"}], "token": "t", "n": 2}) == {
        "a": [{"apiKey": "***"}], "token": "***", "n": 2}


@pytest.mark.parametrize(("text", "shown"), [
    ("postgresql://etl:p%40ss@db:5432/x", "postgresql://etl:***@db:5432/x"),
    ("copy http://ops:a:b@h/x to s3://key:sec@bucket/k", "copy http://ops:***@h/x to s3://key:***@bucket/k"),
    ("postgresql://etl:p@ss@db/x", "postgresql://etl:***@db/x"),  # "@" in the password
    ("http://ops@h/x", "http://ops@h/x"),  # a user without a password
    ("mailto:a@b.org", "mailto:a@b.org"),
    ("http://h/p?who=u:p@q", "http://h/p?who=u:p@q"),  # not the URL's userinfo
    # libpq takes the password as a query parameter too
    ("postgresql://etl@db/x?password=s3cret", "postgresql://etl@db/x?password=***"),
    ("postgresql:///x?host=db&PASSWORD=s3&sslmode=require&sslpassword=k",
     "postgresql:///x?host=db&PASSWORD=***&sslmode=require&sslpassword=***"),
    ("see ?password=x", "see ?password=x"),  # no URL
])
def test_url_passwords_are_hidden(text: str, shown: str) -> None:
    """A database or peer URL given as a task parameter keeps its password out of the store
    (and out of every peer it is synced to)."""
    assert hide_password(text) == shown
    assert params({"db_url": text}) == {"db_url": shown}
    assert jsonable([{"cmd": text}]) == [{"cmd": shown}]
    assert redact({"args": [text]}) == {"args": [shown]}


def test_a_huge_mapping_is_read_only_as_far_as_it_is_kept() -> None:
    """A task returning a dict of millions of keys: the items past MAX_ITEMS are never read
    (they were all copied first, 0.6 s for 3 million)."""
    from collections.abc import Iterator, Mapping

    read: list[int] = []

    class Huge(Mapping[int, int]):
        def __len__(self) -> int:
            return 3_000_000

        def __iter__(self) -> Iterator[int]:
            for i in range(3_000_000):
                read.append(i)
                yield i

        def __getitem__(self, key: int) -> int:
            return key

    out = jsonable(Huge())
    assert len(out) == MAX_ITEMS + 1 and out["..."] == f"{3_000_000 - MAX_ITEMS} more"
    assert len(read) <= MAX_ITEMS + 1
