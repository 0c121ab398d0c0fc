"""The bundle format: header, canonical record lines, checksum trailer, gzip, damage detection."""

from __future__ import annotations

import gzip
import json

import pytest

from cmf_core.federation.bundle import (
    FORMAT,
    BundleError,
    Header,
    Reader,
    bundle_bytes,
)

HEADER = Header(origin_site="hpc", origin_store="s1", selector={"pipelines": ["p"]}, since=3,
                snapshot=9, exclude={"s2": 4}, vector=None, created_at=1.5)
LINES = ['{"_v":["s1",4],"kind":"event","type":"INPUT"}',
         '{"_v":["s1",5],"kind":"metric","name":"m","value":0.5}',
         '{"_v":["s1",9],"kind":"pipeline","name":"p\\u00e9 ü"}']


def make(compress: bool = False, lines: list[str] = LINES, end: int = 9,
         complete: bool = True) -> bytes:
    return b"".join(bundle_bytes(HEADER, lines, end, complete, compress))


def read(data: bytes, **kw: object) -> tuple[Reader, list[dict[str, object]]]:
    reader = Reader([data[i:i + 7] for i in range(0, len(data), 7)], **kw)  # tiny chunks
    reader.open()
    return reader, list(reader)


@pytest.mark.parametrize("compress", [False, True])
def test_roundtrip(compress: bool) -> None:
    data = make(compress)
    assert data[:2] == (b"\x1f\x8b" if compress else b'{"')
    reader, records = read(data)
    assert reader.header == HEADER
    assert records == [json.loads(line) for line in LINES]
    assert reader.trailer is not None
    assert (reader.trailer.records, reader.trailer.end, reader.trailer.complete) == (3, 9, True)
    text = gzip.decompress(data).decode() if compress else data.decode()
    first, *_, last = text.splitlines()
    assert json.loads(first)["format"] == FORMAT and json.loads(first)["origin_site"] == "hpc"
    assert json.loads(last)["kind"] == "cmf-bundle-end" and len(json.loads(last)["sha256"]) == 64


@pytest.mark.parametrize("compress", [False, True])
def test_any_changed_byte_fails_the_checksum(compress: bool) -> None:
    data = make().replace(b'"value":0.5', b'"value":0.6')
    if compress:
        data = gzip.compress(data)
    with pytest.raises(BundleError, match="fails its checksum"):
        read(data)


def test_changed_trailer_fails_the_checksum() -> None:
    data = make(end=9).replace(b'"end":9', b'"end":99')
    with pytest.raises(BundleError, match="fails its checksum"):
        read(data)


def test_dropped_or_added_line_fails() -> None:
    text = make().decode().splitlines(keepends=True)
    with pytest.raises(BundleError, match="fails its checksum"):
        read("".join(text[:2] + text[3:]).encode())
    with pytest.raises(BundleError, match="fails its checksum"):
        read("".join([*text[:2], text[2], *text[2:]]).encode())


@pytest.mark.parametrize("compress", [False, True])
def test_cut_off_transfer_is_detected(compress: bool) -> None:
    data = make(compress)
    with pytest.raises(BundleError, match="cut off"):
        read(data[: len(data) - 30])


def test_data_after_trailer_is_refused() -> None:
    with pytest.raises(BundleError, match="after the bundle trailer"):
        read(make() + LINES[0].encode() + b"\n")


def test_not_a_bundle_unless_plain_allowed() -> None:
    plain = b'{"kind":"pipeline","name":"x","site":"a"}\n\n{"kind":"stage"}\n'
    with pytest.raises(BundleError, match="not a CMF bundle"):
        read(plain)
    reader, records = read(plain, allow_plain=True)
    assert reader.header is None and [r["kind"] for r in records] == ["pipeline", "stage"]
    assert reader.lineno == 3


def test_unknown_format_and_bad_json() -> None:
    future = make().replace(b'"format":1', b'"format":3', 1)
    with pytest.raises(BundleError, match="format 3 is not supported"):
        read(future)
    with pytest.raises(BundleError, match="lists the columns"):  # format 2 without its columns
        read(make().replace(b'"format":1', b'"format":2', 1))
    with pytest.raises(BundleError, match=":3: not valid JSON"):
        read(make().replace(b'"value":0.5', b'"value":NaN'))
    with pytest.raises(BundleError, match="empty"):
        read(b"")


@pytest.mark.parametrize("depth", [201, 5000, 100_000])
def test_a_line_nested_too_deeply_is_refused_naming_it(depth: int) -> None:
    """Deeper than Python's recursion limit: a RecursionError; deeper than 200 levels: a record
    that every later read of the store would fail on. Brackets inside strings do not count."""
    inner = "[" * (depth - 2) + "]" * (depth - 2)  # in the object and its properties
    deep = '{"kind":"pipeline","name":"q","properties":{"a":' + inner + '}}'
    with pytest.raises(BundleError, match=rf":3: nested {depth} levels deep; at most 200 "):
        read(make(lines=[LINES[0], deep, LINES[2]]))
    with pytest.raises(BundleError, match=rf":2: nested {depth} levels deep"):
        read(f'{{"kind":"stage"}}\n{deep}\n'.encode(), allow_plain=True)
    with pytest.raises(BundleError, match=rf":1: nested {depth} levels deep"):
        read(f"{deep}\n".encode())  # the first line: a header, or plain lines
    at_most = '{"kind":"pipeline","name":"q","properties":{"a":' + "[" * 198 + "]" * 198 + "}}"
    strings = '{"kind":"pipeline","name":"' + '[{\\"' * 500 + '"}'
    _, records = read(make(lines=[at_most, strings]))
    assert [r["name"] for r in records] == ["q", '[{"' * 500]
