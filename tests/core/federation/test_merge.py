"""Import: set union (idempotent, commutative, associative), all or nothing, true conflicts
recorded and never overwritten, lineage joined on digests, versions and high-water marks."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmf_core.carbon.rollup import rollup
from cmf_core.errors import InvalidInputError
from cmf_core.federation.bundle import BundleError
from cmf_core.federation.export import Selector, canonical_lines, export_bundle, load_vector
from cmf_core.federation.merge import get_hwm, import_bundle
from cmf_core.identity import remote_digest, uuid7
from cmf_core.model import (
    Artifact,
    EnergyRecord,
    Event,
    Execution,
    Metric,
    Pipeline,
    Record,
    Stage,
)
from cmf_core.store import Store, open_store


class Stores:
    """Fresh SQLite stores, one per site name, in a temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.opened: list[Store] = []

    def __call__(self, site: str) -> Store:
        n = len(self.opened)
        store = open_store(f"sqlite:///{self.root / f'{site}-{n}.db'}", site=site)
        self.opened.append(store)
        return store

    def close(self) -> None:
        for s in self.opened:
            s.close()


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    s = Stores(tmp_path)
    yield s
    s.close()


def bundle(store: Store, selector: Selector | None = None, **kw: object) -> bytes:
    return b"".join(export_bundle(store, selector or Selector(), **kw))  # type: ignore[arg-type]


def art(name: str, site: str, created_at: float = 1.0, type: str = "Dataset") -> Artifact:
    return Artifact(id=remote_digest(f"s3://b/{name}", "1"), type=type, name=name,
                    uri=f"s3://{site}/{name}", site=site, created_at=created_at)


def run(store: Store, stage: str, ins: list[Artifact], outs: list[Artifact],
        kwh: float = 0.01, pipeline: str = "p") -> Execution:
    site = store.site
    ex = Execution(pipeline, stage, site, started_at=10.0).ended(ended_at=20.0)
    store.put([Pipeline(pipeline, site, 1.0), Stage(pipeline, stage, site, 1.0), *ins, *outs,
               ex, *[Event(ex.id, a.id, "INPUT") for a in ins],
               *[Event(ex.id, a.id, "OUTPUT") for a in outs], Metric(ex.id, "loss", 0.1),
               EnergyRecord(ex.id, site, kwh, kwh / 2)])
    return ex


def test_import_is_an_idempotent_union(stores: Stores) -> None:
    a, b = stores("a"), stores("b")
    run(a, "train", [art("data", "a")], [art("model", "a")])
    run(b, "eval", [art("model", "b", created_at=5.0)], [art("report", "b")])
    report = import_bundle(b, [bundle(a)])
    assert report.records > 0 and report.conflicts == [] and report.origin_site == "a"
    once = canonical_lines(b)
    mark = b.max_seq()
    again = import_bundle(b, [bundle(a)])
    assert again.records == report.records
    assert canonical_lines(b) == once
    assert len(b.export_page(mark)) == 0  # no row changed: nothing new to send anyone
    assert b.count_executions() == 2
    assert b.get_artifact(art("model", "a").id).site == "a"  # earliest row of the digest wins
    locations = {(loc.site, loc.uri) for loc in b.artifact_locations(art("model", "a").id)}
    assert locations == {("a", "s3://a/model"), ("b", "s3://b/model")}


def test_lineage_joins_on_digests_across_sites(stores: Stores) -> None:
    """A model trained at A and fine-tuned at B is one provenance chain after a merge."""
    a, b = stores("a"), stores("b")
    data, base, tuned = art("data", "a"), art("base.pt", "a"), art("tuned.pt", "b")
    train = run(a, "train", [data], [base])
    import_bundle(b, [bundle(a)])
    finetune = run(b, "finetune", [base], [tuned])
    import_bundle(a, [bundle(b)])
    for s in (a, b):
        up = s.upstream(tuned.id)
        assert up.executions == {train.id, finetune.id}
        assert up.artifacts == {data.id, base.id, tuned.id}


def test_energy_rolls_up_without_double_counting(stores: Stores) -> None:
    a, b, c = stores("a"), stores("b"), stores("c")
    for i in range(3):
        run(a, "s", [], [art(f"a{i}", "a")], kwh=0.5)
        run(b, "s", [], [art(f"b{i}", "b")], kwh=0.25)
    # every path there is, several times over
    for src, dst in [(a, c), (b, c), (a, b), (b, a), (a, c), (b, c), (a, c)]:
        import_bundle(dst, [bundle(src)])
    totals = []
    for s in (a, b, c):
        result = rollup(s, by="site")  # the carbon roll-up, over the merged store
        assert {g.key: g.energy_kwh for g in result.groups} == pytest.approx(
            {"a": 1.5, "b": 0.75})
        assert result.total.executions == result.total.with_energy == 6
        totals.append((result.total.energy_kwh, result.total.co2e_kg))
    assert totals[0] == totals[1] == totals[2]  # to the last bit, whatever the merge order


def test_status_converges_whatever_the_order(stores: Stores) -> None:
    ex = Execution("p", "s", "a", started_at=10.0)
    done = ex.ended("completed", ended_at=30.0, params={"final": True})
    a, b = stores("a"), stores("b")
    a.put([ex])
    b.put([Execution("p", "s", "a", id=ex.id, started_at=5.0)])
    b.put([done])
    ab, ba = stores("ab"), stores("ba")
    for first, second in ((a, b), (b, a)):
        target = ab if first is a else ba
        import_bundle(target, [bundle(first)])
        import_bundle(target, [bundle(second)])
    assert canonical_lines(ab) == canonical_lines(ba)
    got = ab.get_execution(ex.id)
    assert got.status.value == "completed" and got.started_at == 5.0 and got.ended_at == 30.0


def test_failed_import_leaves_nothing(stores: Stores) -> None:
    a, b = stores("a"), stores("b")
    run(a, "train", [art("data", "a")], [art("model", "a")])
    good = bundle(a)
    lines = good.split(b"\n")
    bad_record = b"\n".join([*lines[:3], b'{"_v":["x",1],"kind":"metric","name":"m"}',
                             *lines[3:]])
    for broken, error in ((bad_record, "fails its checksum|bad metric"),
                          (good[:-40], "cut off"),
                          (good.replace(b'"loss"', b'"lost"'), "fails its checksum")):
        with pytest.raises((BundleError, InvalidInputError), match=error):
            import_bundle(b, [broken])
        assert canonical_lines(b) == [] and b.max_seq() == 0
    with pytest.raises(InvalidInputError, match="this very store"):
        import_bundle(a, [good])


def test_true_conflicts_are_recorded_never_overwritten(stores: Stores) -> None:
    a, b = stores("a"), stores("b")
    ex = Execution("p", "s", "a", started_at=10.0).ended(ended_at=20.0, params={"lr": 1})
    digest = remote_digest("s3://x/model", "1")
    a.put([ex, Metric(ex.id, "acc", 0.9, timestamp=5.0),
           EnergyRecord(ex.id, "a", 1.0, 0.5),
           Artifact(digest, "Model", "model", "s3://x/model", "a", created_at=1.0)])
    b.put([Metric(ex.id, "acc", 0.1, timestamp=5.0),  # same metric key, another value
           EnergyRecord(ex.id, "a", 2.0, 0.5),  # same execution's energy, another value
           Artifact(digest, "Dataset", "model", "s3://x/model", "b", created_at=0.5),
           ex.ended("completed", ended_at=20.0, params={"lr": 2})])  # another outcome
    report = import_bundle(b, [bundle(a)])
    found = {(c["kind"], tuple(c["fields"])) for c in report.conflicts}
    assert found == {("metric", ("value",)), ("energy", ("energy_kwh",)),
                     ("artifact", ("type",)), ("execution", ("params",))}
    assert b.metrics([ex.id])[0].value == 0.1  # b kept its own
    assert b.energy([ex.id])[0].energy_kwh == 2.0
    assert b.get_execution(ex.id).params == {"lr": 2}
    stored = b.list_conflicts()  # type: ignore[attr-defined]
    assert {(c["kind"], c["record_id"]) for c in stored} == {
        ("metric", f"{ex.id}/acc/None"), ("energy", ex.id), ("artifact", digest),
        ("execution", ex.id)}
    metric = next(c for c in stored if c["kind"] == "metric")
    assert metric["detail"]["here"] == {"value": 0.1}
    assert metric["detail"]["incoming"] == {"value": 0.9}
    assert metric["detail"]["from_site"] == "a"
    import_bundle(b, [bundle(a)])  # the same conflicts again: noted once
    assert len(b.list_conflicts()) == 4  # type: ignore[attr-defined]


def test_versions_skip_what_the_receiver_has_from_anyone(stores: Stores) -> None:
    """A -> B, then B -> C: C has A's records (from B) and needs nothing from A itself."""
    a, b, c = stores("a"), stores("b"), stores("c")
    run(a, "train", [art("data", "a")], [art("model", "a")])
    rep_b = import_bundle(b, [bundle(a)])
    assert rep_b.adopted_vector and rep_b.high_water == a.max_seq()
    assert load_vector(b)[a.store_id] == a.max_seq()
    assert get_hwm(b, a.store_id, "all") == a.max_seq()
    import_bundle(c, [bundle(b)])
    assert load_vector(c)[a.store_id] == a.max_seq()
    # what A would send C now, leaving out what C's vector covers: nothing
    assert len(a.export_page(0, vector=load_vector(c))) == 0
    # and B's own rows are not echoed back to B by C
    assert len(c.export_page(0, vector=load_vector(b))) == 0
    # a new record at A is all that moves
    new = run(a, "train2", [art("data", "a")], [art("model2", "a")])
    delta = a.export_page(0, vector=load_vector(c))
    assert {r[0] for r in delta.rows["execution"]} == {new.id}


def test_high_water_mark_waits_for_a_gapless_sequence(stores: Stores) -> None:
    a, b = stores("a"), stores("b")
    run(a, "one", [], [art("x1", "a")])
    mark = a.max_seq()
    run(a, "two", [], [art("x2", "a")])
    later = import_bundle(b, [bundle(a, Selector(since_seq=mark))])
    assert later.high_water is None and get_hwm(b, a.store_id, "all") == 0  # a gap before it
    first = import_bundle(b, [bundle(a, Selector(since_seq=0))])
    assert first.high_water == a.max_seq()
    scoped = import_bundle(b, [bundle(a, Selector(pipelines=("p",)))])
    assert not scoped.adopted_vector  # a subset says nothing about the rest of A
    assert get_hwm(b, a.store_id, "pipelines=p") == a.max_seq()


# merge laws (hypothesis) -----------------------------------------------------------------------
SITES = ("a", "b", "c")


@st.composite
def site_writes(draw: st.DrawFn) -> dict[str, list[Record]]:
    """Records written independently at three sites, overlapping on shared ids.

    Shared: artifact digests (each site has its own row: name, uri, time), executions known at
    several sites in different states (running / ended), and the same immutable facts (events,
    metrics, energy) recorded more than once. The only true conflict generated is two outcomes of
    one execution (completed / failed), which the status tie-break resolves in any order.
    """
    n_art, n_ex = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    digests = ["sha256:" + hashlib.sha256(f"{draw(st.integers())}-{i}".encode()).hexdigest()
               for i in range(n_art)]
    exec_ids = [uuid7() for _ in range(n_ex)]
    out: dict[str, list[Record]] = {s: [] for s in SITES}
    for i, eid in enumerate(exec_ids):
        owner = SITES[i % 3]
        start = float(draw(st.integers(0, 5)))
        for site in draw(st.sets(st.sampled_from(SITES), min_size=1)):
            state = draw(st.sampled_from(["running", "completed", "failed"]))
            ex = Execution("p", f"s{i % 2}", owner, id=eid,
                           started_at=start + draw(st.integers(0, 2)))
            if state != "running":
                ex = ex.ended(state, ended_at=100.0 + i, params={"i": i, "state": state})
            out[site] += [Pipeline("p", site, float(draw(st.integers(0, 3)))),
                          Stage("p", f"s{i % 2}", site, float(draw(st.integers(0, 3)))), ex]
            for j in draw(st.sets(st.integers(0, n_art - 1), max_size=2)):
                out[site].append(Event(eid, digests[j], "INPUT" if j % 2 else "OUTPUT"))
            if draw(st.booleans()):
                out[site].append(Metric(eid, "m", float(i), timestamp=1.0))
            if draw(st.booleans()):
                out[site].append(EnergyRecord(eid, owner, 0.1 * (i + 1), 0.05))
    for j, d in enumerate(digests):
        for site in draw(st.sets(st.sampled_from(SITES), min_size=1)):
            out[site].append(Artifact(d, "Dataset", f"{site}-{j}", f"s3://{site}/{j}", site,
                                      created_at=float(draw(st.integers(0, 3)))))
    return out


@pytest.fixture(scope="module")
def law_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("laws")


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(writes=site_writes(), order=st.permutations(SITES))
def test_merge_laws(law_root: Path, writes: dict[str, list[Record]],
                    order: list[str]) -> None:
    """Idempotent, commutative, associative: every merge order gives the same store."""
    stores = Stores(law_root / uuid7())
    stores.root.mkdir()
    try:
        origin = {}
        for site in SITES:
            origin[site] = stores(site)
            origin[site].put(writes[site])
        bundles = {s: bundle(origin[s]) for s in SITES}
        results = []
        for seq in (list(SITES), list(order), list(reversed(order))):  # commutative
            target = stores("t")
            for s in seq:
                rep = import_bundle(target, [bundles[s]])
                # only two outcomes of one execution (completed here, failed there) conflict;
                # the store's status tie-break still makes every order agree
                assert all(c["kind"] == "execution" and "status" in c["fields"]
                           for c in rep.conflicts)
            results.append(canonical_lines(target))
        # associative: (x + y) first, then that merged store's bundle into z's copy
        x, y, z = order
        xy = stores("xy")
        import_bundle(xy, [bundles[x]])
        import_bundle(xy, [bundles[y]])
        grouped = stores("g")
        import_bundle(grouped, [bundles[z]])
        import_bundle(grouped, [bundle(xy)])
        results.append(canonical_lines(grouped))
        # idempotent: everything again, in another order
        for s in reversed(SITES):
            import_bundle(grouped, [bundles[s]])
        results.append(canonical_lines(grouped))
        assert all(r == results[0] for r in results)
        # nothing lost: every execution and every (digest, site) location of every site
        union = {r.id for s in SITES for r in writes[s] if isinstance(r, Execution)}
        assert {line for line in results[0] if '"kind":"execution"' in line} and \
            len([line for line in results[0] if '"kind":"execution"' in line]) == len(union)
        locations = {(r.id, r.site) for s in SITES for r in writes[s] if isinstance(r, Artifact)}
        assert sum('"kind":"location"' in line for line in results[0]) == len(locations)
    finally:
        stores.close()


def test_pairwise_sync_orders_agree(stores: Stores) -> None:
    """Three sites syncing pairwise in every order of the three links end up identical."""
    base = {s: [] for s in SITES}  # type: dict[str, list[Record]]
    shared = art("common", "a")
    for i, s in enumerate(SITES):
        ex = Execution("p", "s", s, started_at=float(i)).ended(ended_at=10.0 + i)
        base[s] = [Pipeline("p", s, float(i)), Stage("p", "s", s, 1.0), shared, ex,
                   Event(ex.id, shared.id, "INPUT"), Metric(ex.id, "m", float(i))]
    finals = []
    for links in itertools.permutations([("a", "b"), ("b", "c"), ("c", "a")]):
        sites = {s: stores(s) for s in SITES}
        for s in SITES:
            sites[s].put(base[s])
        for _ in range(2):
            for x, y in links:
                import_bundle(sites[y], [bundle(sites[x])])
                import_bundle(sites[x], [bundle(sites[y])])
        dumps = {s: canonical_lines(sites[s]) for s in SITES}
        assert dumps["a"] == dumps["b"] == dumps["c"]
        finals.append(dumps["a"])
    assert all(f == finals[0] for f in finals)


def test_import_into_each_backend(store: Store, stores: Stores) -> None:
    """The same bundle merged into SQLite and PostgreSQL gives the same rows, versions kept."""
    a = stores("a")
    run(a, "train", [art("data", "a")], [art("model", "a")])
    run(a, "eval", [art("model", "a")], [art("report", "a")])
    report = import_bundle(store, [bundle(a, compress=True)])
    assert report.conflicts == [] and report.adopted_vector
    assert canonical_lines(store) == canonical_lines(a)
    assert len(store.export_page(0, vector=load_vector(a))) == 0  # every row is a's version
    again = import_bundle(store, [bundle(a)])
    assert again.conflicts == [] and canonical_lines(store) == canonical_lines(a)


def test_import_counts_the_rows_it_added(stores: Stores, store: Store) -> None:
    """The report says how many records were new: none when the same bundle comes again."""
    a = stores("a")
    run(a, "train", [art("data", "a")], [art("model", "a")])
    first = import_bundle(store, [bundle(a)])
    assert first.written == first.records > 0
    again = import_bundle(store, [bundle(a)])
    assert (again.records, again.written) == (first.records, 0)
    run(a, "eval", [art("model", "a")], [art("report", "a")])
    third = import_bundle(store, [bundle(a)])
    # the eval stage, execution, two events, metric and energy; the report and its location
    assert (third.records, third.written) == (first.records + 8, 8)


def test_a_name_at_two_sites_resolves_by_one_clock(stores: Stores) -> None:
    """Two sites each train their own model.pkl; site a's clock is five hours behind, so its
    newer model has the older created_at. After a merge, "model.pkl" at each site is that
    site's latest (never the other site's, whose clock cannot be compared); at a third site
    that made none it is ambiguous, and the error names both sites' candidates."""
    from cmf_core.lineage.query import Query

    behind = 5 * 3600.0
    a, b, hub = stores("a"), stores("b"), stores("hub")

    def model(site: str, n: int, created_at: float) -> Artifact:
        return Artifact(id=remote_digest(f"s3://{site}/model.pkl", str(n)), type="Model",
                        name="model.pkl", uri=f"s3://{site}/model.pkl", site=site,
                        created_at=created_at)

    t = 1_790_000_000.0
    b_model = model("b", 1, t)  # b trains at t by its (right) clock
    a_old, a_new = model("a", 1, t - 1_000 - behind), model("a", 2, t + 1_000 - behind)
    b_run = run(b, "train", [], [b_model])
    run(a, "train", [], [a_old])
    a_run = run(a, "train", [], [a_new])  # a's latest, really after b's
    import_bundle(a, [bundle(b)])
    import_bundle(b, [bundle(a)])
    for s in (a, b):
        assert len(s.find_artifacts(name="model.pkl")) == 3
    assert Query(a).resolve_artifact("model.pkl").id == a_new.id
    assert Query(a).provenance("model.pkl").executions[0].id == a_run.id
    assert Query(b).resolve_artifact("model.pkl").id == b_model.id
    assert Query(b).provenance("model.pkl").executions[0].id == b_run.id
    import_bundle(hub, [bundle(a)])
    with pytest.raises(InvalidInputError) as err:
        Query(hub).resolve_artifact("model.pkl")
    assert (f"artifact {a_new.id} (model.pkl, site a); artifact {b_model.id} (model.pkl, "
            "site b)") in str(err.value)
    assert a_old.id not in str(err.value)  # one candidate per site: its latest
    assert str(err.value).endswith("give the digest (or a prefix of it)")  # the name says no more
