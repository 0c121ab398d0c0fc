"""DAG sources of the tests (``{dag_id}`` and ``{data}`` are filled in when written)."""

CHURN = '''
import json
from pathlib import Path

from airflow.sdk import Asset, dag, task

DATA = Path("{data}")
RAW = Asset(f"file://{DATA}/raw.csv")
TRAIN = Asset(f"file://{DATA}/train.csv")
MODEL = Asset(f"file://{DATA}/model.json", extra={"cmf_type": "Model"})
REPORT = Asset("s3://reports/churn/eval.json")


@dag(dag_id="{dag_id}", schedule=None, params={"seed": 42})
def churn():
    @task(inlets=[RAW], outlets=[TRAIN])
    def prepare(test_size: float = 0.25) -> dict:
        rows = (DATA / "raw.csv").read_text().splitlines()[1:]
        keep = rows[: int(len(rows) * (1 - test_size))]
        (DATA / "train.csv").write_text("x,y\\n" + "\\n".join(keep))
        return {"rows": len(keep)}

    @task(inlets=[TRAIN], outlets=[MODEL])
    def train(info: dict, C: float = 1.0) -> dict:
        (DATA / "model.json").write_text(json.dumps({"C": C, "rows": info["rows"]}))
        return {"C": C}

    @task(inlets=[MODEL], outlets=[REPORT])
    def evaluate(model: dict) -> float:
        return 0.91

    evaluate(train(prepare(test_size=0.2), C=0.5))


churn()
'''


FLAKY = '''
from airflow.sdk import Asset, dag, task


@dag(dag_id="{dag_id}", schedule=None)
def flaky():
    @task
    def ok() -> int:
        return 1

    @task(outlets=[Asset("s3://bucket/boom/out.csv")])
    def boom(x: int) -> int:
        raise ValueError(f"bad input: {x}")

    @task
    def after(y: int) -> int:
        return y

    after(boom(ok()))


flaky()
'''


SKIPPING = '''
from airflow.sdk import Asset, dag, task
from airflow.sdk.exceptions import AirflowSkipException


@dag(dag_id="{dag_id}", schedule=None)
def skipping():
    @task(outlets=[Asset("s3://bucket/skipped/out.csv")])
    def nothing_to_do() -> None:
        raise AirflowSkipException("no new data")

    nothing_to_do()


skipping()
'''

RETRIED = '''
from datetime import timedelta
from pathlib import Path

from airflow.sdk import dag, task

MARK = Path("{data}") / "failed-once"


@dag(dag_id="{dag_id}", schedule=None)
def retried():
    @task(retries=1, retry_delay=timedelta(seconds=0))
    def flaky_io() -> str:
        if not MARK.exists():
            MARK.write_text("x")
            raise ConnectionError("storage not ready")
        return "ok"

    @task
    def shard(n: int) -> int:
        return n * n

    flaky_io()
    shard.expand(n=[1, 2, 3])


retried()
'''

DEFERRING = '''
import datetime as dt

from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import BaseOperator, dag, task


class Later(BaseOperator):
    """Defers to a trigger without saying so: no ``deferrable`` attribute."""

    def execute(self, context):
        self.defer(trigger=TimeDeltaTrigger(dt.timedelta(milliseconds=50)),
                   method_name="resume")

    def resume(self, context, event=None):
        return "resumed"


@dag(dag_id="{dag_id}", schedule=None)
def deferring():
    @task
    def after(value: str) -> str:
        return value

    after(Later(task_id="wait").output)


deferring()
'''

CONSTRUCTS = '''
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Asset, AssetAlias, TaskGroup, dag, task, task_group

MODEL = Asset("s3://registry/churn/model.pkl", extra={"cmf_type": "Model"})
CARDS = AssetAlias("model_cards")


@dag(dag_id="{dag_id}", schedule=None, params={"name": "world"})
def constructs():
    @task(outlets=[MODEL, CARDS])
    def register(*, outlet_events=None) -> None:
        # this run's versions, given to the asset events as Airflow 3 users give them
        outlet_events[MODEL].extra["etag"] = "e7"
        outlet_events[CARDS].add(Asset("s3://registry/churn/card.json"), extra={"version": "2"})

    @task(inlets=[MODEL, Asset("s3://registry/churn/card.json")])
    def deploy() -> None:
        pass

    @task.bash
    def greet() -> str:
        return "echo hello-{{ params.name }}"

    @task_group(group_id="shards")
    def shards(v: int):
        @task
        def double(v: int) -> int:
            return v * 2

        return double(v)

    @task
    def add(x: int, y: int) -> int:
        return x + y

    @task
    def total(sums) -> int:
        return sum(sums)

    @task
    def check(n: int) -> int:
        if n == 2:
            raise ValueError("bad shard")
        return n

    @task(map_index_template="{{ task.op_kwargs['b'] }}")
    def label(a: int, b: str) -> str:
        return f"{a}{b}"

    with TaskGroup("report"):
        @task.branch
        def choose() -> str:
            return "report.left"

        choose() >> [EmptyOperator(task_id="left"), EmptyOperator(task_id="right")]

    @task.short_circuit
    def gate() -> bool:
        return False

    @task
    def gated() -> int:
        return 1

    @task(retries=0, outlets=[Asset("s3://registry/models/latest")])
    def publish() -> None:
        raise RuntimeError("registry down")

    @task
    def announce() -> None:
        pass

    @task(trigger_rule="one_failed")
    def alert() -> str:
        return "alerted"

    @task(trigger_rule="all_done")
    def cleanup() -> str:
        return "cleaned"

    register() >> deploy()
    published = publish()
    published >> [announce(), alert(), cleanup()]
    greet()
    shards.expand(v=[5, 6])
    total(add.partial(y=10).expand(x=[1, 2]))
    check.expand(n=[1, 2])
    label.expand_kwargs([{"a": 1, "b": "p"}, {"a": 2, "b": "q"}])
    gate() >> gated()


constructs()
'''

SETUP_TEARDOWN = """
from airflow.sdk import dag, setup, task, teardown


@dag(dag_id="{dag_id}", schedule=None)
def roles():
    @setup
    def make_cluster() -> str:
        return "c1"

    @task
    def train(cluster: str) -> None:
        raise ValueError("diverged")

    @teardown
    def drop_cluster(cluster: str) -> str:
        return "dropped"

    @task
    def open_db() -> None:
        pass

    @task
    def close_db() -> None:
        pass

    cluster = make_cluster()
    train(cluster) >> drop_cluster(cluster)
    db = open_db().as_setup()
    db >> close_db().as_teardown(setups=db, on_failure_fail_dagrun=True)


roles()
"""

TEARDOWN_FAILS = """
from airflow.sdk import dag, setup, task, teardown


@dag(dag_id="{dag_id}", schedule=None)
def teardown_fails():
    @setup
    def make_cluster() -> None:
        pass

    @task
    def train() -> None:
        pass

    @teardown
    def drop_cluster() -> None:
        raise RuntimeError("cluster busy")

    make_cluster() >> train() >> drop_cluster()


teardown_fails()
"""

ALIAS_INLETS = """
from airflow.sdk import Asset, AssetAlias, dag, task

PARTS = AssetAlias("{dag_id}_parts")


@dag(dag_id="{dag_id}", schedule=None)
def alias_inlets():
    @task(outlets=[PARTS])
    def write(part: int, *, outlet_events=None, run_id=None) -> None:
        # each run writes new objects, known only at run time; part 0 is versioned (the run id,
        # not ts_nodash: two runs in one second had the same objects)
        run = "".join(c if c.isalnum() else "-" for c in run_id)
        asset = Asset(f"s3://lake/{dag_id}/{run}/part{part}.csv")
        outlet_events[PARTS].add(asset, extra={"etag": f"e{part}"} if part == 0 else {})

    @task(inlets=[PARTS])
    def read() -> None:
        pass

    write.expand(part=[0, 1]) >> read()


alias_inlets()
"""
