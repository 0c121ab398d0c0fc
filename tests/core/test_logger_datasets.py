"""How ``Cmf.log_dataset`` / ``log_model`` identify local files and folders: real files in a
temporary folder (a big file is a sparse one), a real SQLite store."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cmf_core import Cmf
from cmf_core.errors import InvalidInputError
from cmf_core.identity import path_digest
from cmf_core.openlineage import local
from cmf_core.openlineage.local import local_identity, local_stat_identity


@pytest.fixture
def cmf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cmf]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CMF_DIGEST_MAX_MB", raising=False)
    logger = Cmf(pipeline_name="p", store=f"sqlite:///{tmp_path / 'cmf.db'}", site="hpc",
                 measure_energy=False)
    logger.create_execution("s")
    yield logger
    logger.close()


def test_a_home_relative_path_is_expanded(cmf: Cmf, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    (home / "data" / "train.csv").write_text("a,b\n1,2\n")
    monkeypatch.setenv("HOME", str(home))
    art = cmf.log_dataset("~/data/train.csv", "input")
    assert art.uri == str((home / "data" / "train.csv").resolve())
    assert art.id == path_digest(home / "data" / "train.csv")
    assert art.name == "train.csv"


def test_a_missing_path_is_named_with_where_it_was_looked_for(
        cmf: Cmf, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(InvalidInputError) as e:
        cmf.log_dataset("data/missing.csv", "input")
    assert str(e.value) == (f"artifact path data/missing.csv ({tmp_path}/data/missing.csv) "
                            "does not exist")
    with pytest.raises(InvalidInputError) as e:
        cmf.log_dataset("~/x.csv", "input")
    assert str(e.value) == f"artifact path ~/x.csv ({tmp_path}/home/x.csv) does not exist"
    (tmp_path / "latest.csv").symlink_to("v3.csv")  # dangling: v3 was never written
    with pytest.raises(InvalidInputError,
                       match=r"latest.csv .* is a symbolic link to v3.csv, which does not exist"):
        cmf.log_model("latest.csv", "output")


def test_relative_paths_and_symlinks_name_the_file_itself(cmf: Cmf, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "v3.csv").write_text("x\n")
    (tmp_path / "latest.csv").symlink_to("data/v3.csv")
    by_link = cmf.log_dataset("latest.csv", "input")
    by_path = cmf.log_dataset("./data/../data/v3.csv", "input")
    assert by_link.id == by_path.id == path_digest(tmp_path / "data" / "v3.csv")
    assert by_link.uri == by_path.uri == str((tmp_path / "data" / "v3.csv").resolve())
    assert by_link.properties == {"digest_method": "sha256", "size_bytes": 2}


def test_a_file_above_digest_max_mb_is_identified_by_path_size_and_mtime(
        cmf: Cmf, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A 2 TB file was read to its end on every call: the script blocked for hours. Above
    ``digest_max_mb`` (1 GiB, as the adapters) it gets the adapters' stat digest, with a
    WARNING once per path, and ``digest_method`` says so."""
    big = tmp_path / "big.h5"
    with big.open("wb") as f:  # sparse: 2 GiB of size, no blocks
        f.truncate(2 << 30)
    with caplog.at_level(logging.WARNING, logger="cmf_core.logger"):
        art = cmf.log_dataset("big.h5", "input")
        again = cmf.log_dataset(str(big), "input")
    assert art.id == again.id == local_stat_identity(str(big.resolve()))[0]  # as the adapters
    assert art.id.startswith("version:")
    assert art.properties == {"digest_method": "stat", "size_bytes": 2 << 30}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "2,048 MiB, more than digest_max_mb (1024 MiB; CMF_DIGEST_MAX_MB)" in warnings[0]
    assert "digest_method 'stat'" in warnings[0]
    os.utime(big, ns=(1, 10**18))  # rewritten: a new modification time is a new artifact
    assert cmf.log_dataset("big.h5", "input").id != art.id


def test_digest_max_mb_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    for i in range(3):  # a folder's files count together: 3 x 600 bytes > 1 KiB
        (tmp_path / "d" / f"part-{i}.csv").write_bytes(b"x" * 600)
    monkeypatch.setenv("CMF_DIGEST_MAX_MB", str(1 / 1024))
    with Cmf(pipeline_name="p", store=f"sqlite:///{tmp_path / 'c.db'}", site="hpc",
             measure_energy=False) as cmf, cmf.create_execution("s"):
        small = cmf.log_dataset("d/part-0.csv", "input")
        folder = cmf.log_dataset("d", "input")
    assert small.properties["digest_method"] == "sha256"
    assert folder.properties == {"digest_method": "stat"}
    assert folder.id == local_stat_identity(str(tmp_path / "d"))[0]


def test_a_folder_of_many_files(cmf: Cmf, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "shards"
    for i in range(1200):
        sub = folder / f"{i % 7}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i}.bin").write_bytes(i.to_bytes(2, "big"))
    art = cmf.log_dataset("shards", "input")
    assert art.id == path_digest(folder) and art.properties == {"digest_method": "sha256"}
    monkeypatch.setattr(local, "MAX_WALK_FILES", 1000)  # more files than are walked
    with caplog.at_level(logging.WARNING, logger="cmf_core.logger"):
        big = cmf.log_dataset("shards", "input")
    assert big.properties == {"digest_method": "stat"}
    assert big.id == local_identity(str(folder))[0] != art.id
    assert "holds more than 1,000 files" in caplog.text


def test_a_re_run_over_unchanged_files_reads_them_once_and_a_changed_one_again(
        cmf: Cmf, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook cell re-run logs the same dataset: read once while it is unchanged (the
    adapters' per-process cache), read again once it changed, even with its size and mtime
    put back."""
    monkeypatch.setattr(local, "RACY_NS", -(10**12))  # files written just now are cached too
    reads: list[str] = []

    def counting(path: str | os.PathLike[str]) -> str:
        reads.append(str(path))
        return path_digest(path)

    monkeypatch.setattr(local, "path_digest", counting)
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    st = data.stat()
    first = [cmf.log_dataset("train.csv", "input").id for _ in range(3)]
    assert first == [path_digest(data)] * 3 and len(reads) == 1
    data.write_text("a,b\n3,4\n")
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cmf.log_dataset("train.csv", "input").id == path_digest(data) != first[0]
    assert len(reads) == 2
