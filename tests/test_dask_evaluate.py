"""The evaluate stage on Dask against scikit-learn on the collected rows, and the numpy engine.

A model fitted by the numpy estimator scores partitioned val and test splits on a
2-worker LocalCluster. The references: scikit-learn's metrics on the same rows gathered
in memory (confusion counts exact, areas within the error bound the binning reports),
and the numpy engine's evaluate_model on the same data (its bootstrap intervals:
close, not equal, as one bootstrap is Poisson and the other stratified multinomial).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from logreg import LogisticRegression
from logreg.engines.cluster import connect
from logreg.engines.dask_evaluate import evaluate_parts, plot_makers, poisson_weights
from logreg.engines.partitions import write_parts
from logreg.frames import TARGET, read_split
from logreg.stages import evaluate as stage
from logreg.tracking.runs import DIGEST_CHARS

FEATURES = ["x1", "x2", "x3", "x4"]
SIZES = {"train": 3_000, "val": 2_000, "test": 3_000}


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    with connect(None, n_workers=2, threads_per_worker=1, memory_limit="1GiB") as client:
        yield client


def _frame(n: int, rng: np.random.Generator) -> pd.DataFrame:
    X = rng.normal(size=(n, len(FEATURES)))
    logit = X @ np.array([1.2, -0.8, 0.4, 0.0]) - 2.8
    frame = pd.DataFrame(X, columns=FEATURES)
    frame[TARGET] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return frame


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Partitioned splits (500 rows a part), their frames, and a model fitted on train."""
    root = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(0)
    frames = {name: _frame(n, rng) for name, n in SIZES.items()}
    paths = {}
    for name, frame in frames.items():
        paths[name] = root / f"{name}.parquet"
        write_parts([frame.iloc[i : i + 500] for i in range(0, len(frame), 500)], paths[name])
    train = read_split(paths["train"])
    model = LogisticRegression(solver="newton", alpha=1e-3).fit(train.X, train.y)
    return model, paths, frames


def _scores(model, frame):
    return model.predict_proba(frame[FEATURES].to_numpy())[:, 1], (
        frame[TARGET] == "yes"
    ).to_numpy()


def test_metrics_equal_scikit_learns_on_the_collected_rows(client, data):
    model, paths, frames = data
    metrics, _, positive = evaluate_parts(
        client, model, {**paths, "rebalanced": None}, n_bootstrap=200, threshold_method="val_max"
    )
    assert positive == "yes"
    scores, y = _scores(model, frames["test"])
    test = metrics["test"]
    # Exact: the confusion counts at 0.5, and everything made of them.
    tn, fp, fn, tp = skm.confusion_matrix(y, scores >= 0.5).ravel()
    assert (test["tp"], test["fp"], test["fn"], test["tn"]) == (tp, fp, fn, tn)
    assert test["precision"] == pytest.approx(skm.precision_score(y, scores >= 0.5), abs=1e-15)
    assert test["recall"] == pytest.approx(skm.recall_score(y, scores >= 0.5), abs=1e-15)
    assert test["f1"] == pytest.approx(skm.f1_score(y, scores >= 0.5), abs=1e-15)
    assert test["log_loss"] == pytest.approx(skm.log_loss(y, scores), rel=1e-12)
    assert test["brier"] == pytest.approx(skm.brier_score_loss(y, scores), rel=1e-12)
    labels = np.where(scores >= 0.5, "yes", "no")
    report = skm.classification_report(frames["test"][TARGET], labels, output_dict=True)
    for label in ("no", "yes"):
        for key in ("precision", "recall", "f1-score", "support"):
            ours = test["per_class"][label][key.replace("-score", "")]
            assert ours == pytest.approx(report[label][key], abs=1e-15)
    # Binned: the areas within the bound the binning reports (and it is small here).
    bound = test["binning"]["auc_error_bound"]
    assert bound < 0.1
    assert abs(test["roc_auc"] - skm.roc_auc_score(y, scores)) <= bound
    assert abs(test["pr_auc"] - skm.average_precision_score(y, scores)) <= bound
    # The tuned threshold: an edge, exact counts on test; its val F1 within one row of
    # the best F1 over every threshold.
    t = test["threshold_tuned"]["threshold"]
    tn, fp, fn, tp = skm.confusion_matrix(y, scores >= t).ravel()
    assert (test["threshold_tuned"]["tp"], test["threshold_tuned"]["fp"]) == (tp, fp)
    val_scores, val_y = _scores(model, frames["val"])
    precision, recall, _ = skm.precision_recall_curve(val_y, val_scores)
    best = np.max(2 * precision * recall / np.maximum(precision + recall, 1e-300))
    assert best - 2 / len(val_y) <= metrics["val"]["threshold_tuned"]["f1"] <= best + 1e-12
    # The majority rule and the baseline, as on one machine.
    assert metrics["baseline"]["majority_accuracy"] == pytest.approx(np.mean(~y), abs=1e-15)
    assert metrics["baseline"]["f1_ours"] == pytest.approx(test["f1"], abs=1e-15)
    assert "skipped" not in metrics["baseline"]


def test_the_same_keys_as_the_numpy_engine_and_intervals_close_to_its(client, data):
    model, paths, _ = data
    ours, _, _ = evaluate_parts(
        client, model, {**paths, "rebalanced": None}, n_bootstrap=400, seed=3,
        threshold_method="bootstrap_median",
    )  # fmt: skip
    splits = {name: read_split(path) for name, path in paths.items()}
    reference = stage.evaluate_model(
        model, splits, "yes", n_bootstrap=400, seed=3, threshold_method="bootstrap_median"
    )
    for section in ("test", "val", "baseline"):
        assert _keys(reference[section]) <= _keys(ours[section]), section
    for name, interval in reference["test"]["ci95"].items():
        if isinstance(interval, dict):
            width = interval["high"] - interval["low"]
            low, high = ours["test"]["ci95"][name]["low"], ours["test"]["ci95"][name]["high"]
            assert abs(low - interval["low"]) < 0.25 * width, name
            assert abs(high - interval["high"]) < 0.25 * width, name
    # The thresholds are both F1 optima of val resamples: close, not equal.
    spread = reference["val"]["threshold_tuned"]["spread"]
    assert spread["low"] <= ours["val"]["threshold_tuned"]["threshold"] <= spread["high"]
    for key in ("baseline",):
        for name in ("f1", "f1_ours", "objective", "objective_ours"):
            assert ours[key][name] == pytest.approx(reference[key][name], rel=1e-9)


def _keys(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        out |= _keys(value, f"{prefix}{key}/") if isinstance(value, dict) else {prefix + key}
    return out


def test_results_do_not_depend_on_the_partitioning(client, data, tmp_path):
    model, paths, frames = data
    repartitioned = dict(paths)
    for name in ("val", "test"):
        frame = frames[name]
        repartitioned[name] = tmp_path / f"{name}.parquet"
        write_parts(
            [frame.iloc[i : i + 700] for i in range(0, len(frame), 700)], repartitioned[name]
        )
    options = {"n_bootstrap": 100, "seed": 1, "threshold_method": "cv", "baseline": False}
    first, _, _ = evaluate_parts(client, model, {**paths, "rebalanced": None}, **options)
    second, _, _ = evaluate_parts(client, model, {**repartitioned, "rebalanced": None}, **options)
    assert first["test"].pop("log_loss") == pytest.approx(second["test"].pop("log_loss"), rel=1e-12)
    assert first["test"].pop("brier") == pytest.approx(second["test"].pop("brier"), rel=1e-12)
    for split in ("val", "test"):
        for key in ("log_loss", "brier"):
            first[split].pop(key, None), second[split].pop(key, None)
    assert first == second
    # cv on Dask: the bootstrap median on the validation split, said in metrics.json.
    assert first["val"]["threshold_tuned"]["method"] == "bootstrap_median"
    assert first["val"]["threshold_tuned"]["asked"] == "cv"


def test_the_baseline_is_skipped_when_its_rows_do_not_fit(client, data):
    model, paths, _ = data
    metrics, _, _ = evaluate_parts(
        client, model, {**paths, "rebalanced": None}, n_bootstrap=100, memory_limit=100_000
    )
    baseline = metrics["baseline"]
    assert set(baseline) == {"majority_accuracy", "skipped"}
    assert "6,000 rows (fit and test) take 240,000 bytes" in baseline["skipped"]
    assert "more than 25,000 (25% of a worker's memory limit)" in baseline["skipped"]


def test_poisson_weights_are_poisson_1_and_independent_across_resamples():
    hashes = np.random.default_rng(0).integers(0, 2**63, size=200_000, dtype=np.uint64)
    w = poisson_weights(hashes, seed=4, resample=0)
    assert w.mean() == pytest.approx(1.0, abs=0.01)
    assert w.var() == pytest.approx(1.0, abs=0.02)
    assert np.mean(w == 0) == pytest.approx(np.exp(-1), abs=0.005)
    assert np.mean(w == 2) == pytest.approx(np.exp(-1) / 2, abs=0.005)
    other = poisson_weights(hashes, seed=4, resample=1)
    assert abs(np.corrcoef(w, other)[0, 1]) < 0.01
    np.testing.assert_array_equal(w, poisson_weights(hashes, seed=4, resample=0))
    assert not np.array_equal(w, poisson_weights(hashes, seed=5, resample=0))


@pytest.mark.slow  # its own cluster, and MLflow logging the model: ~20-40 s
def test_the_stage_on_dask_writes_the_numpy_engines_reports(data, isolated_tracking):
    from mlflow.tracking import MlflowClient

    tmp_path = isolated_tracking  # the project root, with its own MLflow store
    model, paths, _ = data
    model_dir = tmp_path / "models"
    model.save(model_dir / stage.MODEL_FILE)
    params = {
        "evaluate": {"baseline": True, "threshold_method": "cv", "n_bootstrap": 100, "seed": 0},
        "mlflow": {"enabled": True, "tracking_uri": None, "experiment_name": "e"},
        "engine": {
            "name": "dask", "address": None, "n_workers": 1, "threads_per_worker": 1,
            "memory_limit": "1GiB", "partition_rows": 500,
        },
    }  # fmt: skip
    stage_paths = stage.Paths(
        model_dir=model_dir,
        train=paths["train"],
        val=paths["val"],
        test=paths["test"],
        reports_dir=tmp_path / "reports",
    )
    metrics = stage.run(params, stage_paths)
    written = json.loads((tmp_path / "reports" / stage.METRICS_FILE).read_text())
    assert written == metrics
    assert set(written) == {"test", "val", "baseline", "model"}
    for name in ("pr.csv", "roc.csv", "confusion.csv", "confusion_tuned.csv"):
        assert (tmp_path / "reports/plots" / name).stat().st_size > 0
    confusion = pd.read_csv(tmp_path / "reports/plots/confusion.csv")
    assert len(confusion) == SIZES["test"]
    assert ((confusion["actual"] == "yes") & (confusion["predicted"] == "yes")).sum() == metrics[
        "test"
    ]["tp"]
    roc = pd.read_csv(tmp_path / "reports/plots/roc.csv")
    assert roc["fpr"].is_monotonic_increasing and roc["tpr"].iloc[-1] == 1.0
    figures = {p.name for p in (tmp_path / "reports/figures").iterdir()}
    assert figures == {
        "loss_curves.png", "pr_curve.png", "roc_curve.png", "confusion_matrix.png",
        "coefficients.png", "calibration.png",
    }  # fmt: skip
    # The run: the metrics, and the partitioned test split's digest, by hand.
    store = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = store.search_runs([store.get_experiment_by_name("e").experiment_id])
    assert run.data.metrics["test/f1"] == pytest.approx(metrics["test"]["f1"], abs=1e-15)
    listing = "".join(
        f"{part.name} {hashlib.sha256(part.read_bytes()).hexdigest()}\n"
        for part in sorted(paths["test"].iterdir())
    )
    assert run.data.tags["dataset.test_sha256"] == hashlib.sha256(listing.encode()).hexdigest()
    # The test split as a dataset input, as the numpy engine logs it: its first part's
    # rows gave the schema, the footers the size, the folder's listing the digest.
    (logged,) = run.inputs.dataset_inputs
    assert logged.dataset.name == "data/test"
    assert {t.key: t.value for t in logged.tags}["mlflow.data.context"] == "test"
    assert logged.dataset.digest == run.data.tags["dataset.test_sha256"][:DIGEST_CHARS]
    schema = json.loads(logged.dataset.schema)["mlflow_colspec"]
    assert [(c["name"], c["type"]) for c in schema] == [
        *((name, "double") for name in FEATURES),
        (TARGET, "string"),
    ]
    assert json.loads(logged.dataset.profile) == {
        "num_rows": SIZES["test"],
        "num_elements": SIZES["test"] * 5,
        "targets": TARGET,
    }


def test_several_classes_give_scikit_learns_metrics(client, tmp_path):
    rng = np.random.default_rng(2)
    frames = {}
    paths = {}
    for name, n in SIZES.items():
        X = rng.normal(size=(n, len(FEATURES)))
        logit = X @ np.array([1.0, -1.0, 0.5, 0.0]) + rng.logistic(size=n)
        frame = pd.DataFrame(X, columns=FEATURES)
        frame[TARGET] = np.array(["a", "b", "c"])[np.digitize(logit, [-1.0, 1.5])]
        frames[name], paths[name] = frame, tmp_path / f"{name}.parquet"
        write_parts([frame.iloc[i : i + 600] for i in range(0, n, 600)], paths[name])
    train = read_split(paths["train"])
    model = LogisticRegression(solver="newton", alpha=1e-3).fit(train.X, train.y)
    ours, drawn, positive = evaluate_parts(client, model, {**paths, "rebalanced": None})
    assert positive is None and drawn.threshold is None
    splits = {name: read_split(path) for name, path in paths.items()}
    reference = stage.evaluate_model(model, splits)  # scikit-learn on the rows in memory
    for section in ("test", "val"):
        for key, value in reference[section].items():
            if key == "per_class":
                for label, report in value.items():
                    assert ours[section][key][label] == pytest.approx(report, abs=1e-15)
            elif key.endswith("auc_macro"):
                bound = ours["test"]["binning"]["auc_error_bound"]
                assert abs(ours[section][key] - value) <= bound, key
            else:
                assert ours[section][key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    assert ours["baseline"] == pytest.approx(reference["baseline"], rel=1e-9)
    y = frames["test"][TARGET].to_numpy()
    predicted = model.predict(frames["test"][FEATURES].to_numpy())
    np.testing.assert_array_equal(drawn.matrix, skm.confusion_matrix(y, predicted))
    data_files, figures = plot_makers(drawn)
    for name, make in {**data_files, **figures}.items():
        make(tmp_path / name)
    rows = pd.read_csv(tmp_path / "confusion.csv")
    np.testing.assert_array_equal(
        skm.confusion_matrix(rows["actual"], rows["predicted"]), drawn.matrix
    )
