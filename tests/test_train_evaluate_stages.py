"""The train and evaluate stages on tiny prepared splits in tmp_path, run in-process."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from logreg import LogisticRegression, preprocess
from logreg.crossval import out_of_fold_scores
from logreg.frames import TARGET, WEIGHT, read_split, write_table
from logreg.metrics import tune_threshold
from logreg.preprocess import Preprocessing, write_preprocessing
from logreg.stages import evaluate, train
from logreg.tracking import provenance

FEATURES = ["x1", "x2", "x3"]
EPOCHS = 8
RUN_FILE = ".logreg/run.json"  # as in dvc.yaml


def make_split(n: int, rng: np.random.Generator, classes=("No", "Yes")) -> pd.DataFrame:
    """Standardised features and an imbalanced target (about 20 % of the last class)."""
    X = rng.normal(size=(n, len(FEATURES)))
    logit = X @ np.array([1.5, -1.0, 0.0]) - 1.5
    if len(classes) == 2:
        y = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), classes[1], classes[0])
    else:
        y = np.asarray(classes)[np.digitize(logit + rng.logistic(size=n), [-2.5, 0.0])]
    frame = pd.DataFrame(X, columns=FEATURES)
    frame[TARGET] = y
    return frame


@pytest.fixture
def project(isolated_tracking):
    """An empty project folder, the tracking store inside it; tests add data and params."""
    return isolated_tracking


def write_data(root, classes=("No", "Yes")) -> None:
    rng = np.random.default_rng(0)
    train_frame = make_split(300, rng, classes)
    write_table(train_frame, root / "data/prepared/train.parquet")
    write_table(make_split(150, rng, classes), root / "data/prepared/val.parquet")
    write_table(make_split(150, rng, classes), root / "data/prepared/test.parquet")
    rebalanced = train_frame.copy()
    rebalanced[WEIGHT] = np.where(rebalanced[TARGET] == classes[-1], 3.0, 1.0)
    write_table(rebalanced, root / "data/rebalanced/train.parquet")
    write_preprocessing(root / "data/prepared/preprocess.json", preprocess.fit(train_frame))


def write_params(root, mlflow: bool = False, **model) -> None:
    params = {
        "data": {"name": "tiny"},
        "rebalance": {"strategy": "class_weight", "ratio": 1.0, "k_neighbors": 5, "seed": 0},
        "model": {
            "penalty": "l2",
            "alpha": 1e-3,
            "l1_ratio": 0.5,
            "solver": "sgd",
            "fit_intercept": True,
            **model,
        },
        "train": {
            "batch_size": 32,
            "learning_rate": 0.1,
            "lr_schedule": "step",
            "momentum": 0.0,
            "epochs": EPOCHS,
            "tol": 0.0,
            "patience": None,
            "max_time": None,
            "dtype": "float64",
            "seed": 0,
        },
        "mlflow": {"enabled": mlflow, "tracking_uri": None, "experiment_name": "stages"},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def run_train(root) -> None:
    train.main(
        [
            "--params", "params.yaml",
            "--train", "data/rebalanced/train.parquet",
            "--val", "data/prepared/val.parquet",
            "--preprocess", "data/prepared/preprocess.json",
            "--model-dir", "models",
            "--history", "reports/history.csv",
            "--run-file", RUN_FILE,
        ]
    )  # fmt: skip


def run_evaluate(root, *extra: str) -> None:
    evaluate.main(
        [
            "--params", "params.yaml",
            "--model-dir", "models",
            "--train", "data/prepared/train.parquet",
            "--val", "data/prepared/val.parquet",
            "--test", "data/prepared/test.parquet",
            "--reports-dir", "reports",
            "--run-file", RUN_FILE,
            *extra,
        ]
    )  # fmt: skip


def test_train_then_evaluate_with_mlflow(project, capsys, monkeypatch):
    from mlflow.tracking import MlflowClient

    write_data(project)
    write_params(project, mlflow=True)
    run_train(project)
    run_evaluate(project, "--rebalanced", "data/rebalanced/train.parquet")

    # The model and its metadata.
    model = LogisticRegression.load(project / "models/model.npz")
    assert model.metadata_["feature_names"] == FEATURES
    assert model.metadata_["positive_class"] == "Yes"
    assert Preprocessing.from_dict(model.metadata_["preprocess"]).feature_names == FEATURES
    history = pd.read_csv(project / "reports/history.csv")
    assert list(history.columns) == ["epoch", "train_loss", "val_loss", "learning_rate"]
    assert len(history) == model.n_iter_ == EPOCHS

    # Metrics for DVC.
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert {"test", "val", "baseline"} <= set(metrics)
    for key in ("precision", "recall", "f1", "pr_auc", "roc_auc", "accuracy", "log_loss", "brier"):
        assert 0.0 <= metrics["test"][key] <= (1.0 if key != "log_loss" else 10.0)
    tuned = metrics["test"]["threshold_tuned"]
    assert 0.0 < tuned["threshold"] < 1.0 and "f1" in tuned
    # The default: the F1 maximum of 5-fold out-of-fold scores on train + val.
    train_val = [read_split(project / f"data/prepared/{s}.parquet") for s in ("train", "val")]
    rebalancing = {"strategy": "class_weight", "ratio": 1.0, "k_neighbors": 5, "seed": 0}
    y_oof, s_oof = out_of_fold_scores(model, train_val, "Yes", rebalancing)
    assert tuned["threshold"] == tune_threshold(y_oof, s_oof)[0]
    spread = metrics["val"]["threshold_tuned"]["spread"]  # where those scores' optimum lies
    assert spread["low"] <= tuned["threshold"] <= spread["high"]
    assert metrics["val"]["threshold_tuned"]["threshold"] == tuned["threshold"]
    ci95 = metrics["test"]["ci95"]
    assert (ci95["n_bootstrap"], ci95["seed"]) == (1000, 0)  # the schema's defaults
    for key in ("f1", "precision", "recall", "pr_auc"):
        assert 0.0 <= ci95[key]["low"] <= ci95[key]["high"] <= 1.0
    assert set(tuned["ci95"]) == {"f1", "precision", "recall"}
    assert {"f1", "objective", "objective_ours", "majority_accuracy"} <= set(metrics["baseline"])

    coefficients = pd.read_csv(project / "reports/coefficients.csv")
    assert list(coefficients.columns) == [
        "feature",
        "coefficient",
        "odds_ratio",
        "sd",
        "odds_ratio_per_unit",
        "rank",
        "is_zero",
    ]
    assert coefficients["rank"].tolist() == [1, 2, 3]
    train_features = pd.read_parquet(project / "data/prepared/train.parquet")[FEATURES]
    sd = coefficients.set_index("feature")["sd"]  # from the preprocessing saved with the model
    np.testing.assert_allclose(sd[FEATURES], train_features.std(ddof=0), rtol=1e-12)
    np.testing.assert_allclose(coefficients["odds_ratio"], np.exp(coefficients["coefficient"]))
    for name in ("pr.csv", "roc.csv", "confusion.csv", "confusion_tuned.csv"):
        assert (project / "reports/plots" / name).stat().st_size > 0
    confusion = pd.read_csv(project / "reports/plots/confusion.csv")
    assert list(confusion.columns) == ["actual", "predicted"] and len(confusion) == 150
    for name in ("loss_curves", "pr_curve", "roc_curve", "confusion_matrix", "coefficients"):
        assert (project / f"reports/figures/{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert (project / "reports/figures/calibration.png").exists()

    # One MLflow run across both stages, in the project root's sqlite store.
    run_id = json.loads((project / RUN_FILE).read_text())["run_id"]
    client = MlflowClient(f"sqlite:///{project}/mlflow.db")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert len(client.search_runs([run.info.experiment_id])) == 1
    assert run.data.params["train.batch_size"] == "32"
    assert run.data.params["rebalance.strategy"] == "class_weight"
    assert run.data.tags["rebalance.strategy"] == "class_weight"
    assert run.data.tags["dataset.name"] == "tiny"
    assert len(run.data.tags["dataset.sha256"]) == 64
    model_sha256 = hashlib.sha256((project / "models/model.npz").read_bytes()).hexdigest()
    assert run.data.tags["model.sha256"] == model_sha256
    assert len(client.get_metric_history(run_id, "train/loss")) == EPOCHS
    assert run.data.metrics["test/f1"] == pytest.approx(metrics["test"]["f1"])
    assert run.data.metrics["n_nonzero_coef"] == 3
    assert run.data.metrics["train/learning_rate_resolved"] == 0.1  # the step SGD took
    assert {"test/precision", "test/recall", "val/f1", "baseline/f1"} <= set(run.data.metrics)
    assert run.data.metrics["test/ci95/f1/low"] == pytest.approx(ci95["f1"]["low"])
    assert run.data.metrics["test/ci95/pr_auc/high"] == pytest.approx(ci95["pr_auc"]["high"])
    assert run.data.metrics["val/threshold_tuned/spread/high"] == pytest.approx(spread["high"])
    reports = {a.path for a in client.list_artifacts(run_id, "reports")}
    assert "reports/coefficients.csv" in reports
    assert {i.dataset.name for i in run.inputs.dataset_inputs} >= {"tiny/train", "tiny/test"}

    # Not a TTY: one summary line per stage, no progress bar.
    err = capsys.readouterr().err
    assert "train: 8 epochs" in err and "it/s" not in err and "epoch/s" not in err

    # Without the run file (a model from `dvc pull`), evaluate finds the run by its tag.
    (project / RUN_FILE).unlink()
    run_evaluate(project)
    assert [r.info.run_id for r in client.search_runs([run.info.experiment_id])] == [run_id]
    assert "no MLflow run" not in capsys.readouterr().err

    # A failure while evaluating marks the resumed run FAILED, not RUNNING.
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(evaluate, "write_reports", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run_evaluate(project)
    assert client.get_run(run_id).info.status == "FAILED"


@pytest.fixture
def hash_log(project, monkeypatch):
    """Every file the stages hash (a cached digest is not a hash), in any process: the
    background tracker's forked child writes to the same log."""
    log = project / "hashed.log"
    original = provenance._sha256.__wrapped__

    @functools.lru_cache(maxsize=16)
    def logged(file, size, mtime_ns):
        with open(log, "a") as out:
            out.write(f"{os.getpid()} {file}\n")
        return original(file, size, mtime_ns)

    monkeypatch.setattr(provenance, "_sha256", logged)
    return log


@pytest.mark.parametrize("mlflow", [True, False])
def test_each_split_is_hashed_once_where_it_is_tracked_and_not_without_tracking(
    project, hash_log, mlflow
):
    """Train and evaluate, as their command lines run them (MLflow in a child process):
    each split is read once to hash it, for its tag and its dataset's digest together,
    and with tracking off not at all (only the model is hashed: the run file names it)."""
    write_data(project)
    write_params(project, mlflow=mlflow)
    run_train(project)
    run_evaluate(project)
    hashed = [line.split(" ", 1)[1] for line in hash_log.read_text().splitlines()]
    splits = {
        name: str((project / f"data/{name}.parquet").resolve())
        for name in ("rebalanced/train", "prepared/val", "prepared/test")
    }
    assert {name: hashed.count(path) for name, path in splits.items()} == {
        name: int(mlflow) for name in splits
    }
    if mlflow:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{project}/mlflow.db")
        (run,) = client.search_runs(client.get_experiment_by_name("stages").experiment_id)
        tags = run.data.tags
        for tag, name in (
            ("dataset.sha256", "rebalanced/train"),
            ("dataset.val_sha256", "prepared/val"),
            ("dataset.test_sha256", "prepared/test"),
        ):
            assert tags[tag] == hashlib.sha256(Path(splits[name]).read_bytes()).hexdigest()


@pytest.mark.parametrize("baseline", [True, False])
def test_evaluate_reads_the_rebalanced_split_only_for_the_baseline(project, monkeypatch, baseline):
    """The scikit-learn baseline is all that fits on --rebalanced: without it, at 2M rows,
    reading it was 460 MiB of the stage's peak for nothing."""
    write_data(project)
    write_params(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["evaluate"] = {
        "baseline": baseline,
        "n_bootstrap": 100,
        "threshold_method": "val_max",
        "seed": 0,
    }
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    run_train(project)
    read = []
    monkeypatch.setattr(
        evaluate, "read_split", lambda path, *a: read.append(str(path)) or read_split(path, *a)
    )
    run_evaluate(project, "--rebalanced", "data/rebalanced/train.parquet")
    assert ("data/rebalanced/train.parquet" in read) is baseline
    assert len(read) == 3 + baseline


def test_without_mlflow_newton_adds_intervals_and_nothing_is_tracked(project):
    write_data(project)
    write_params(project, mlflow=False, solver="newton")
    run_train(project)
    run_evaluate(project)
    assert json.loads((project / RUN_FILE).read_text())["run_id"] is None
    assert not (project / "mlflow.db").exists()
    coefficients = pd.read_csv(project / "reports/coefficients.csv")
    assert {"std_err", "p_value", "or_ci_low", "or_ci_high"} <= set(coefficients.columns)
    assert (coefficients["or_ci_low"] <= coefficients["odds_ratio"]).all()
    assert (project / "reports/figures/coefficients.png").exists()


def test_retraining_writes_the_same_bytes_and_the_seconds_go_to_the_run_file(project):
    # DVC hashes the model and the history: a rerun must not change them (dvc.lock).
    write_data(project)
    write_params(project, mlflow=True)
    outputs = ("models/model.npz", "models/model.json", "reports/history.csv")
    run_train(project)
    first = {name: (project / name).read_bytes() for name in outputs}
    first_run = json.loads((project / RUN_FILE).read_text())
    run_train(project)
    assert {name: (project / name).read_bytes() for name in outputs} == first
    assert b"elapsed" not in first["models/model.json"]
    second_run = json.loads((project / RUN_FILE).read_text())
    assert second_run["run_id"] != first_run["run_id"]
    assert second_run["model_sha256"] == hashlib.sha256(first["models/model.npz"]).hexdigest()
    assert second_run["train_time_s"] > 0


def test_l1_reports_exact_zeros(project):
    write_data(project)
    write_params(project, penalty="l1", alpha=0.05)
    run_train(project)
    run_evaluate(project)
    coefficients = pd.read_csv(project / "reports/coefficients.csv")
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert coefficients["is_zero"].sum() == 3 - metrics["model"]["n_nonzero_coef"]
    assert coefficients.loc[coefficients["feature"] == "x3", "is_zero"].item()  # no signal


def test_multiclass_reports_macro_and_weighted(project):
    write_data(project, classes=("a", "b", "c"))
    write_params(project)
    run_train(project)
    run_evaluate(project)
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert {"f1_macro", "f1_weighted", "precision_macro", "recall_weighted"} <= set(metrics["test"])
    assert set(metrics["test"]["per_class"]) == {"a", "b", "c"}
    assert "threshold_tuned" not in metrics["test"]
    coefficients = pd.read_csv(project / "reports/coefficients.csv")
    assert coefficients.columns[0] == "class" and len(coefficients) == 9


def test_fit_model_uses_the_sample_weights_and_validation(project):
    write_data(project)
    train_split = read_split(project / "data/rebalanced/train.parquet")
    val_split = read_split(project / "data/prepared/val.parquet")
    model_params = {"penalty": "l2", "alpha": 1e-3}
    train_params = {"batch_size": "full", "epochs": 30, "patience": 2, "learning_rate": 0.5}
    weighted = train.fit_model(train_split, val_split, model_params, train_params)
    assert weighted.feature_names_in_ == FEATURES
    assert all(r["val_loss"] is not None for r in weighted.history_)
    direct = LogisticRegression(**model_params, **train_params).fit(
        train_split.X, train_split.y, sample_weight=train_split.sample_weight
    )
    unweighted = LogisticRegression(**model_params, **train_params).fit(
        train_split.X, train_split.y
    )
    assert not np.allclose(direct.coef_, unweighted.coef_)
    # Early stopping may cut the validated fit short; its start matches the weighted fit.
    assert weighted.history_[0]["train_loss"] == pytest.approx(direct.history_[0]["train_loss"])


def test_user_errors_end_in_one_line_and_exit_2(project, capsys):
    write_data(project)
    write_params(project, batch_sized=3)
    with pytest.raises(SystemExit) as exit_info:
        run_train(project)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "model.batch_sized: unknown key (got 3)" in err
    assert "did you mean train.batch_size?" in err

    write_params(project)
    with pytest.raises(SystemExit) as exit_info:
        run_evaluate(project)
    assert exit_info.value.code == 2
    assert "models/model.npz: file not found" in capsys.readouterr().err

    (project / "data/prepared/preprocess.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_info:
        run_train(project)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "data/prepared/preprocess.json: not a preprocessing file" in err
    assert not (project / "models").exists()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_estimator_gets_c_ordered_arrays_in_its_working_dtype(project, monkeypatch, dtype):
    """A frame's to_numpy() is Fortran-ordered: the stage must not hand that to fit."""
    write_data(project)
    write_params(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["dtype"] = dtype
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    seen = {}
    fit = LogisticRegression.fit

    def spy(self, X, y, sample_weight=None, X_val=None, y_val=None, callback=None):
        seen["X"], seen["X_val"] = np.asarray(X), np.asarray(X_val)
        return fit(self, X, y, sample_weight, X_val, y_val, callback)

    monkeypatch.setattr(LogisticRegression, "fit", spy)
    run_train(project)
    for name in ("X", "X_val"):
        assert seen[name].flags["C_CONTIGUOUS"], name
        assert seen[name].dtype == np.dtype(dtype), name
    expected = pd.read_parquet(project / "data/rebalanced/train.parquet")[FEATURES].to_numpy()
    assert np.array_equal(seen["X"], expected.astype(dtype))


@pytest.mark.parametrize("mlflow", [True, False])
def test_the_fit_leaves_the_tracking_child_a_core(project, monkeypatch, mlflow):
    """With MLflow on, its calls run in a child beside the fit: the fit's BLAS keeps to
    one thread (tracking.background.work_beside); with it off, the libraries' own."""
    from threadpoolctl import threadpool_info, threadpool_limits

    write_data(project)
    write_params(project, mlflow=mlflow)
    seen = []
    fit_model = train.fit_model

    def spy(*args, **kwargs):
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return fit_model(*args, **kwargs)

    monkeypatch.setattr(train, "fit_model", spy)
    with threadpool_limits(limits=2, user_api="blas"):
        run_train(project)
    assert seen and set(seen) == ({1} if mlflow else {2})
