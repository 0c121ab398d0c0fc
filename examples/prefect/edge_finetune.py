"""Edge fine-tuning with Prefect: load the shared model, fine-tune it on this site's data,
evaluate it, and send the run's metadata to the HPC site.

A plain Prefect flow: lineage, parameters, metrics, energy and carbon are recorded with no change
to it, by either zero-code route (see README.md). The only cmf import is the federated-sync
step, which a site adds where it wants to exchange metadata.

    PREFECT_PLUGINS_ENABLED=true python examples/prefect/edge_finetune.py \\
        --hpc-url http://hpc.example.org:8080 --hpc-token "$HPC_TOKEN"
"""

from __future__ import annotations

import argparse
import csv
import pickle
from pathlib import Path

import numpy as np
from cmf_prefect.tasks import federated_sync
from prefect import flow, get_run_logger, task

HERE = Path(__file__).resolve().parent
CHURN = HERE.parent / "data" / "telco-churn" / "Telco-Customer-Churn.csv"
FEATURES = ("tenure", "MonthlyCharges", "TotalCharges", "SeniorCitizen")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@task
def load_model(path: str) -> str:
    """The shared base model (logistic regression weights); created, untrained, if missing."""
    p = Path(path)
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        base = {"w": np.zeros(len(FEATURES)), "b": 0.0, "features": list(FEATURES)}
        p.write_bytes(pickle.dumps(base))
    return str(p)


@task
def prepare_local_data(source: str, out_dir: str, test_share: float = 0.25) -> str:
    """This site's data: numeric features, standardised, split into train and test files."""
    rows = []
    with open(source, newline="") as fh:
        for r in csv.DictReader(fh):
            try:
                x = [float(r[f]) for f in FEATURES]
            except ValueError:  # blank TotalCharges for brand-new customers
                continue
            rows.append([*x, 1.0 if r["Churn"] == "Yes" else 0.0])
    data = np.array(rows)
    data[:, :-1] = (data[:, :-1] - data[:, :-1].mean(0)) / data[:, :-1].std(0)
    order = np.random.default_rng(7).permutation(len(data))
    cut = int(len(data) * (1 - test_share))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savetxt(out / "train.csv", data[order[:cut]], delimiter=",", fmt="%.6f")
    np.savetxt(out / "test.csv", data[order[cut:]], delimiter=",", fmt="%.6f")
    return str(out)


@task
def fine_tune(base_model: str, data_dir: str, epochs: int, lr: float, out: str) -> str:
    """Gradient descent from the base weights on the local training split."""
    model = pickle.loads(Path(base_model).read_bytes())
    train = np.loadtxt(Path(data_dir) / "train.csv", delimiter=",")
    x, y = train[:, :-1], train[:, -1]
    w, b = model["w"].copy(), model["b"]
    for _ in range(epochs):
        p = _sigmoid(x @ w + b)
        w -= lr * x.T @ (p - y) / len(y)
        b -= lr * float(np.mean(p - y))
    Path(out).write_bytes(pickle.dumps({**model, "w": w, "b": b}))
    return out


@task
def evaluate(model_path: str, data_dir: str) -> dict[str, float]:
    """Accuracy and log loss on the local test split."""
    model = pickle.loads(Path(model_path).read_bytes())
    test = np.loadtxt(Path(data_dir) / "test.csv", delimiter=",")
    p = np.clip(_sigmoid(test[:, :-1] @ model["w"] + model["b"]), 1e-7, 1 - 1e-7)
    y = test[:, -1]
    return {"accuracy": float(np.mean((p > 0.5) == y)),
            "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))}


@flow(name="edge-fine-tune")
def edge_fine_tune(data: str = str(CHURN), workdir: str = "edge-run", epochs: int = 50,
                   lr: float = 0.5, hpc_url: str | None = None,
                   hpc_token: str | None = None) -> dict[str, float]:
    base = load_model(f"{workdir}/base-model.pkl")
    data_dir = prepare_local_data(data, f"{workdir}/data")
    tuned = fine_tune(base, data_dir, epochs, lr, f"{workdir}/model-edge.pkl")
    metrics = evaluate(tuned, data_dir)
    if hpc_url:
        federated_sync(hpc_url, token=hpc_token, direction="push", pipeline="edge-fine-tune",
                       wait_for=[metrics])
    else:
        get_run_logger().info("no --hpc-url: the metadata stays at this site")
    return metrics


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(CHURN))
    parser.add_argument("--workdir", default="edge-run")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--hpc-url", help="the HPC site's `cmf serve` URL")
    parser.add_argument("--hpc-token", help="its bearer token")
    args = parser.parse_args()
    print(edge_fine_tune(data=args.data, workdir=args.workdir, epochs=args.epochs,
                         hpc_url=args.hpc_url, hpc_token=args.hpc_token))
