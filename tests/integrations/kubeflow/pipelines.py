"""Real KFP components and pipelines used by the Kubeflow tests (kfp reads their source).

The components are ordinary user code: nothing in them knows about CMF. They are built with
``install_kfp_package=False`` because the test virtual environment has kfp already and no pip.
"""

# no ``from __future__ import annotations``: kfp reads the annotations as objects
from cmf_kubeflow.components import federated_sync, recommend_seed, use_cmf_secret
from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def make_data(rows: int, seed: int, data: Output[Dataset]) -> int:
    import random

    rng = random.Random(seed)
    with open(data.path, "w") as fh:
        fh.write("x,y\n")
        for _ in range(rows):
            x = rng.random()
            fh.write(f"{x:.6f},{int(x > 0.5)}\n")
    data.metadata["rows"] = rows
    return rows


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def train_model(data: Input[Dataset], threshold: float, model: Output[Model]):
    with open(data.path) as fh:
        lines = fh.read().splitlines()[1:]
    positives = sum(1 for line in lines if float(line.split(",")[0]) > threshold)
    with open(model.path, "w") as fh:
        fh.write(f"threshold={threshold}\npositives={positives}\n")
    model.metadata["framework"] = "rule"


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def evaluate_model(data: Input[Dataset], model: Input[Model], metrics: Output[Metrics]):
    with open(model.path) as fh:
        threshold = float(fh.read().split("\n")[0].split("=")[1])
    with open(data.path) as fh:
        rows = [line.split(",") for line in fh.read().splitlines()[1:]]
    correct = sum(1 for x, y in rows if int(float(x) > threshold) == int(y))
    metrics.log_metric("accuracy", correct / len(rows))
    metrics.log_metric("rows", float(len(rows)))


@dsl.pipeline(name="three-step")
def three_step(rows: int = 50, threshold: float = 0.5):
    data = make_data(rows=rows, seed=7)
    model = train_model(data=data.outputs["data"], threshold=threshold)
    evaluate_model(data=data.outputs["data"], model=model.outputs["model"])


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def explode(data: Input[Dataset], note: dsl.OutputPath(str)):
    with open(note, "w") as fh:  # written, then the task fails: KFP publishes no output
        fh.write("partial")
    with open(data.path) as fh:
        raise ValueError("boom: " + str(len(fh.read())))


@dsl.pipeline(name="failing")
def failing():
    data = make_data(rows=5, seed=1)
    explode(data=data.outputs["data"])


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def tune(configs: list, seeds: Input[dsl.Artifact], best: Output[Model]) -> str:
    import json
    import zlib

    from cmf_core.recommend import AdaptiveSeeder
    from cmf_core.recommend.space import config_key

    with open(seeds.path) as fh:
        body = json.load(fh)
    assert [s["config"] for s in body["seeds"]] == configs, "parameter and artifact disagree"
    choice = configs[0] if configs else {"model": "logreg", "C": 1.0}
    # adaptive seeds from the artifact, scored by a deterministic stand-in for fit-and-score
    seeder = AdaptiveSeeder.from_dict(body)
    observations = {}
    while (config := seeder.next_config(observations)) is not None:
        observations[config_key(config)] = zlib.crc32(config_key(config).encode()) / 2**32
    with open(best.path, "w") as fh:
        json.dump({"first": choice, "adaptive": [config_key(c) for c in seeder.given]}, fh,
                  sort_keys=True)
    return choice["model"]


@dsl.pipeline(name="seeded-search")
def seeded_search(task: dict, peer_url: str, rows: int = 40):
    """The three-step pipeline plus the two CMF components, as a user would add them."""
    data = make_data(rows=rows, seed=7)
    model = train_model(data=data.outputs["data"], threshold=0.5)
    evaluated = evaluate_model(data=data.outputs["data"], model=model.outputs["model"])
    rec = recommend_seed(task=task, k=3)
    tuned = tune(configs=rec.outputs["configs"], seeds=rec.outputs["seeds"])
    federated_sync(peer_url=peer_url, direction="push").after(evaluated, tuned)


@dsl.container_component
def shell_step(message: str):
    return dsl.ContainerSpec(image="alpine", command=["echo"], args=[message])


@dsl.pipeline(name="mixed")
def mixed():
    make_data(rows=3, seed=2)
    shell_step(message="hi")


@dsl.pipeline(name="sync-only")
def sync_only(peer_url: str = "https://cmf.site-b.example"):
    sync = federated_sync(peer_url=peer_url, direction="both")
    use_cmf_secret(sync, "cmf-peer", {"token": "CMF_SERVER_TOKEN"})
    recommend_seed(task={"category": "classification"})


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def square(x: int, out: Output[Dataset]) -> int:
    with open(out.path, "w") as fh:
        fh.write(str(x * x))
    return x * x


@dsl.pipeline(name="looped")
def looped():
    with dsl.ParallelFor([1, 2, 3]) as item:
        square(x=item)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def read_square(data: Input[Dataset]) -> int:
    with open(data.path) as fh:
        return int(fh.read())


@dsl.pipeline(name="squared")
def squared(x: int) -> int:
    """A pipeline used as a component: its tasks share their names with the loop's below."""
    produced = square(x=x)
    return read_square(data=produced.outputs["out"]).output


@dsl.pipeline(name="nested-loop")
def nested_loop(square_uri: str):
    with dsl.ParallelFor([1, 2], parallelism=1) as item:
        produced = square(x=item)
        read_square(data=produced.outputs["out"])
    squared(x=3)
    imported = dsl.importer(artifact_uri=square_uri, artifact_class=Dataset,
                            metadata={"source": "elsewhere"})
    read_square(data=imported.output).set_retry(num_retries=1)  # kfp.local does not retry


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def greet(name: str, options: dict) -> str:
    return name + "|" + ",".join(f"{k}={v}" for k, v in sorted(options.items()))


@dsl.pipeline(name="f-strings")
def f_strings(who: str = "kfp", n: int = 3):
    """Values KFP passes as placeholders inside constants: f-strings, channels in a dict."""
    first = greet(name=f"{who}-{n}", options={"fixed": "{{not-a-placeholder}}"})
    greet(name=f"{first.output}/done", options={"who": who, "n": n, "from": first.output})


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def list_items() -> list:
    return [{"tag": "a"}, {"tag": "b"}]


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def label(data: Input[Dataset], tag: str, out: Output[Dataset]):
    with open(data.path) as src, open(out.path, "w") as fh:
        fh.write(f"{tag}:{src.read()}")


@dsl.pipeline(name="squared-loop")
def squared_loop(x: int) -> Dataset:
    """A pipeline used as a component with a loop of its own; its output is a task's."""
    with dsl.ParallelFor([5, 6]) as item:
        square(x=item)
    return square(x=x).outputs["out"]


@dsl.pipeline(name="items-and-outputs")
def items_and_outputs(xs: list = [2, 3], word: str = "w"):  # noqa: B006 (kfp: its default)
    """Loop items from a pipeline parameter, a constant list and a task's output (a field of
    each), and nested pipelines whose output another task reads."""
    with dsl.ParallelFor(xs) as x:
        square(x=x)
    with dsl.ParallelFor(list_items().output) as item:
        greet(name=item.tag, options={"from": word})
    inner = squared_loop(x=4)
    label(data=inner.output, tag=word)


@dsl.pipeline(name="flat-nested")
def flat_nested():
    """No control flow in the root DAG: kfp.local runs every task in the run folder, the
    nested pipeline's ``square`` and ``read-square`` next to the outer ones."""
    nine = squared(x=3).output
    read_square(data=square(x=nine).outputs["out"])


@dsl.pipeline(name="seed-models")
def seed_models(task: dict, models: list = ["rf", "hgb"],  # noqa: B006 (kfp: its default)
                no_runs: list = ["xgboost"], empty: list = []):  # noqa: B006
    """recommend_seed with the model families of the search space, and with bad ones."""
    recommend_seed(task=task, k=3, models=models, store_url="none")
    recommend_seed(task=task, k=3, models=no_runs, store_url="none")
    recommend_seed(task=task, k=3, models=empty, store_url="none")
    recommend_seed(task=task, k=3, store_url="none")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def flip(side: str) -> str:
    return side


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def say(word: str, out: Output[Dataset]):
    with open(out.path, "w") as fh:
        fh.write(word)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def cleanup(note: str):
    print("cleanup:", note)


@dsl.pipeline(name="guarded-branches")
def guarded_branches(side: str = "tails"):
    """If/Elif/Else under an exit handler (kfp.local 2.16.1 runs every branch of it)."""
    done = cleanup(note="bye")
    with dsl.ExitHandler(done):
        flipped = flip(side=side)
        with dsl.If(flipped.output == "heads"):
            say(word="heads")
        with dsl.Elif(flipped.output == "tails"):
            say(word="tails")
        with dsl.Else():
            say(word="edge")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def total(parts: Input[list[Dataset]], out: Output[Dataset]):
    values = []
    for part in parts:
        with open(part.path) as fh:
            values.append(int(fh.read()))
    with open(out.path, "w") as fh:
        fh.write(str(sum(values)))


@dsl.pipeline(name="guarded-fan-in")
def guarded_fan_in(side: str = "heads"):
    """Exit handler, a loop fanned in with dsl.Collected, a condition and a failing task
    (compiled for the cluster reader: kfp.local 2.16.1 cannot run dsl.Collected)."""
    done = cleanup(note="bye")
    with dsl.ExitHandler(done):
        flipped = flip(side=side)
        with dsl.ParallelFor([1, 2]) as item:
            squares = square(x=item)
        total(parts=dsl.Collected(squares.outputs["out"]))
        with dsl.If(flipped.output == "heads"):
            say(word="heads")
        with dsl.Else():
            say(word="tails")
        explode(data=make_data(rows=2, seed=3).outputs["data"])
