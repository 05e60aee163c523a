"""The Hydra runner (python -m logreg.run) and the default study (python -m logreg.sweep).

The slow test runs a real 2×2 multirun with two parallel joblib jobs on tiny synthetic
data against an sqlite store in tmp_path; the others check the pure pieces on
hand-made inputs.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from logreg import pipeline, schema
from logreg.params import compose
from logreg.run import (
    SweepParentRun,
    best_child,
    run_pipeline,
    superseded_attempts,
    sweep_description,
    validation_f1,
)
from logreg.stages import entry
from logreg.sweep import best_per, collect, comparison_figure, format_table, rank, summary

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "data=synthetic",
    "data.n_samples=400",
    "train.epochs=5",
    "evaluate.baseline=false",
]
EPOCHS = 5


@pytest.mark.slow
def test_parallel_sweep_gives_four_finished_children_under_one_parent(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_ROOT", "MLFLOW_RUN_ID")}
    env |= {"MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [
        sys.executable,
        "-m",
        "logreg.run",
        "--multirun",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *TINY,
        "train.batch_size=16,256",
        "model.penalty=l1,l2",
    ]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]

    jobs = sorted((tmp_path / "multirun").glob("*/*/[0-9]"))
    assert len(jobs) == 4, "Hydra's job folders belong in the working directory"
    assert all((job / "reports" / "metrics.json").is_file() for job in jobs)

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("logreg")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4 == len(runs) - 1
    assert parent.info.status == "FINISHED"
    assert [c.info.status for c in children] == ["FINISHED"] * 4
    # Each job's untracked run file names its own child run: evaluate resumed that run.
    named = {json.loads((job / ".logreg/run.json").read_text())["run_id"] for job in jobs}
    assert named == {c.info.run_id for c in children}

    assert "train.batch_size=16,256" in parent.data.tags["sweep.overrides"]
    assert parent.data.params["sweep.model.penalty"] == "l1,l2"
    assert Path(parent.data.tags["sweep.dir"]).is_relative_to(tmp_path)
    assert parent.data.tags["sweep.sweeper"] == "BasicSweeper"
    assert not any(tag.startswith("sweep.space.") for tag in parent.data.tags)
    combos = {(c.data.params["train.batch_size"], c.data.params["model.penalty"]) for c in children}
    assert combos == {("16", "l1"), ("16", "l2"), ("256", "l1"), ("256", "l2")}
    for child in children:
        assert {"val/f1", "test/f1"} <= set(child.data.metrics)
        losses = client.get_metric_history(child.info.run_id, "train/loss")
        assert sorted(m.step for m in losses) == list(range(1, EPOCHS + 1))

    best_f1 = max(c.data.metrics["val/f1"] for c in children)
    by_id = {c.info.run_id: c for c in children}
    assert by_id[parent.data.tags["best.run_id"]].data.metrics["val/f1"] == best_f1
    assert parent.data.metrics["best/val_f1"] == best_f1
    assert "best/test_f1" in parent.data.metrics

    # The parent's description in the UI says what was compared and which child won.
    note = client.get_run(parent.info.run_id).data.tags["mlflow.note.content"]
    assert "`train.batch_size`: 16,256" in note and "`model.penalty`: l1,l2" in note
    assert "data" not in note.split("\n")[0]  # a fixed override is not compared
    assert "4 finished, 0 failed" in note
    best_line = next(line for line in note.splitlines() if line.startswith("- best:"))
    assert parent.data.tags["best.run_id"] in best_line and f"{best_f1:.4f}" in best_line


def test_the_sweep_description_counts_failed_jobs_and_names_the_best():
    children = [
        {"run_id": "a1", "run_name": "job-a", "status": "FINISHED", "metrics": {"val/f1": 0.4}},
        {"run_id": "b2", "run_name": "job-b", "status": "FAILED", "metrics": {}},
        {"run_id": "c3", "run_name": "job-c", "status": "KILLED", "metrics": {}},
    ]
    compared = {"model.penalty": "l1,l2", "model.alpha": "tag(log, interval(1e-6, 1e-1))"}
    note = sweep_description(compared, children, best_child(children))
    assert note.splitlines() == [
        "Sweep over `model.penalty`: l1,l2; `model.alpha`: tag(log, interval(1e-6, 1e-1))",
        "",
        "- jobs: 1 finished, 1 failed, 1 killed",
        "- best: job-a (`a1`), val F1 0.4000",
    ]
    assert sweep_description({}, children[1:], None).endswith(
        "- best: none (no finished job has a validation F1)"
    )


def test_stage_arguments_match_dvc_yaml(tmp_path):
    """The runner gives each stage the same paths as dvc.yaml's command, inside the job."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert list(pipeline.layout()) == list(dvc["stages"])
    for name, stage in dvc["stages"].items():
        words = shlex.split(stage["cmd"])
        assert words[:3] == ["python", "-m", f"logreg.stages.{name}"]
        # dvc.yaml's command, read by the stage's own parser, gives the layout's paths.
        module = importlib.import_module(f"logreg.stages.{name}")
        params_file, paths = entry.parse_paths(words[3:], module.Paths)
        assert params_file == Path(pipeline.PARAMS_FILE)
        assert paths == pipeline.layout()[name]
        # Every flag, none left to a default; in a job folder every path is inside it.
        expected = dict(zip(words[3::2], words[4::2], strict=True))
        expected = {flag: str(tmp_path / path) for flag, path in expected.items()}
        argv = ["--params", str(tmp_path / pipeline.PARAMS_FILE)]
        argv += entry.argv(pipeline.layout(tmp_path)[name])
        assert dict(zip(argv[::2], argv[1::2], strict=True)) == expected


def test_a_job_checks_its_config_once_and_runs_the_stages_in_process(tmp_path, monkeypatch):
    params = compose(ROOT / "conf", [*TINY, "mlflow=off"])
    checks = []

    def validate(cfg, sections=None, source="params"):
        checks.append(sections)
        return real_validate(cfg, sections, source)

    real_validate = schema.validate
    monkeypatch.setattr(schema, "validate", validate)
    metrics = run_pipeline(params, tmp_path)
    assert checks == [None]  # the whole composition, once; no stage checks again
    assert metrics == json.loads(pipeline.metrics_file(tmp_path).read_text())
    assert yaml.safe_load((tmp_path / pipeline.PARAMS_FILE).read_text()) == params
    for paths in pipeline.layout(tmp_path).values():
        for path in (getattr(paths, name) for name in vars(paths)):
            assert path.exists(), path


def test_best_child_is_the_finished_run_with_the_highest_validation_f1():
    def child(run_id, status, **metrics):
        return {"run_id": run_id, "status": status, "metrics": metrics}

    children = [
        child("a", "FINISHED", **{"val/f1": 0.30}),
        child("b", "FAILED", **{"val/f1": 0.90}),
        child("c", "FINISHED", **{"val/f1": 0.45}),
        child("d", "FINISHED"),
        child("e", "FINISHED", **{"val/f1_macro": 0.40}),
    ]
    assert best_child(children)["run_id"] == "c"
    assert best_child([children[1], children[3]]) is None
    assert validation_f1({"val": {"f1": 0.5}}) == 0.5
    assert validation_f1({"val": {"f1_macro": 0.25}}) == 0.25


def test_a_retried_jobs_unscored_attempt_is_superseded_by_its_scored_twin():
    def child(run_id, status, params, **metrics):
        return {"run_id": run_id, "status": status, "params": params, "metrics": metrics}

    job, other = {"train.batch_size": "16"}, {"train.batch_size": "256"}
    children = [
        child("first", "FINISHED", job),  # its worker died between train and evaluate
        child("retry", "FINISHED", job, **{"val/f1": 0.3}),
        child("lone", "FINISHED", other),  # no scored twin: left as it is
        child("failed", "FAILED", other, **{"val/f1": 0.2}),  # a failed run is no twin
        child("macro", "FINISHED", {"data.name": "iris"}, **{"val/f1_macro": 0.5}),
        child("macro-first", "FINISHED", {"data.name": "iris"}),
    ]
    assert superseded_attempts(children) == {"first": "retry", "macro-first": "macro"}


def test_the_sweep_parent_ends_a_superseded_attempt_killed_and_tags_its_replacement(tmp_path):
    from mlflow.tracking import MlflowClient

    from logreg.tracking.runs import SUPERSEDED_TAG, open_tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = open_tracker({"tracking_uri": uri, "experiment_name": "retries"}, root=tmp_path)
    parent = tracker.open_run(run_name="sweep")
    client = MlflowClient(uri)

    def child(batch_size, val_f1=None):
        run = client.create_run(tracker.experiment_id, tags={"mlflow.parentRunId": parent})
        client.log_param(run.info.run_id, "train.batch_size", batch_size)
        if val_f1 is not None:
            client.log_metric(run.info.run_id, "val/f1", val_f1)
        client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    first, retry, lone = child(16), child(16, 0.3), child(256)
    sweep = SweepParentRun()
    sweep.tracker, sweep.sweep_dir = tracker, tmp_path
    sweep.on_multirun_end(config=None)

    status = {run: client.get_run(run).info.status for run in (first, retry, lone)}
    assert status == {first: "KILLED", retry: "FINISHED", lone: "FINISHED"}
    assert client.get_run(first).data.tags[SUPERSEDED_TAG] == retry
    note = client.get_run(parent).data.tags["mlflow.note.content"]
    assert "- jobs: 2 finished, 0 failed, 1 killed" in note
    assert client.get_run(parent).data.tags["best.run_id"] == retry


def results_frame() -> pd.DataFrame:
    """Six hand-made jobs: smote wins on validation F1, class_weight is 0.05 behind."""
    rows = [
        ("none", "l2", "16", 0.00, 0.10, 0.02),
        ("smote", "l1", "16", 0.30, 0.20, 0.28),
        ("smote", "l2", "full", 0.35, 0.25, 0.31),
        ("class_weight", "l2", "16", 0.30, 0.22, 0.29),
        ("class_weight", "l1", "full", 0.30, 0.26, 0.27),
        ("none", "l1", "full", np.nan, np.nan, np.nan),
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "rebalance.strategy",
            "model.penalty",
            "train.batch_size",
            "val_f1",
            "val_pr_auc",
            "test_f1",
        ],
    )
    frame.insert(0, "job", [str(i) for i in range(len(frame))])
    frame["test_precision"] = frame["test_recall"] = frame["test_pr_auc"] = 0.5
    frame["epochs"], frame["train_time_s"], frame["nonzero_coef"] = 10, 0.25, 85
    return frame


def test_rank_orders_by_validation_f1_then_pr_auc_missing_last():
    ranked = rank(results_frame())
    assert ranked["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert ranked["job"].tolist() == ["2", "4", "3", "1", "0", "5"]  # 0.30 ties by PR-AUC

    best = best_per(ranked)
    assert best["rebalance.strategy"].tolist() == ["smote", "class_weight", "none"]
    text = summary(ranked)
    assert text.startswith("best: smote (l2, batch full): val F1 0.350, test F1 0.310")
    assert "class_weight (l1, batch full), is 0.050 behind on val F1 (0.300)" in text

    table = format_table(ranked)
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["rank", "strategy", "penalty", "batch"]
    assert "0.350" in lines[1] and len(lines) == 7


def test_the_best_child_run_is_the_first_row_of_the_sweep_table():
    results = results_frame()
    children = [
        {
            "run_id": row["job"],
            "status": "FINISHED",
            "metrics": {"val/f1": row["val_f1"], "val/pr_auc": row["val_pr_auc"]},
        }
        for _, row in results.iterrows()
        if not np.isnan(row["val_f1"])  # MLflow holds no metric a job did not log
    ]
    assert best_child(children)["run_id"] == rank(results)["job"].iloc[0] == "2"
    children[4]["metrics"]["val/f1"] = 0.35  # a tie with job 2 on F1: PR-AUC decides, in both
    results.loc[4, "val_f1"] = 0.35
    assert best_child(children)["run_id"] == rank(results)["job"].iloc[0] == "4"


def test_collect_reads_job_folders_and_the_figure_is_written(tmp_path):
    for job, (strategy, f1) in enumerate([("none", 0.1), ("smote", 0.3)]):
        folder = tmp_path / str(job)
        (folder / "reports").mkdir(parents=True)
        params = {
            "data": {"name": "tiny"},
            "rebalance": {"strategy": strategy},
            "model": {"penalty": "l2", "alpha": 1e-4},
            "train": {"batch_size": "full"},
        }
        (folder / "params.yaml").write_text(yaml.safe_dump(params))
        scores = {"f1": f1, "precision": 0.5, "recall": 0.2, "pr_auc": 0.4}
        metrics = {
            "val": scores,
            "test": scores | {"threshold_tuned": {"f1": 0.35}},
            "model": {"epochs": 7, "n_nonzero_coef": 3},
        }
        (folder / "reports" / "metrics.json").write_text(json.dumps(metrics))
        (folder / ".logreg").mkdir()
        run = {"run_id": f"run{job}", "train_time_s": 1.25 + job}
        (folder / ".logreg" / "run.json").write_text(json.dumps(run))
    (tmp_path / "multirun.yaml").write_text("{}\n")  # Hydra's sweep file: not a job

    results = collect(tmp_path)
    assert results["job"].tolist() == ["0", "1"]
    assert results["rebalance.strategy"].tolist() == ["none", "smote"]
    assert results["train_time_s"].tolist() == [1.25, 2.25]
    assert results["run_id"].tolist() == ["run0", "run1"]
    assert rank(results)["rebalance.strategy"].iloc[0] == "smote"

    comparison_figure(results, tmp_path / "out" / "sweep.png")
    assert (tmp_path / "out" / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def _optuna_search(folder: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_ROOT", "MLFLOW_RUN_ID")}
    env |= {
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    command = [sys.executable, "-m", "logreg.run", "--multirun", "search=optuna"]
    command += ["hydra.sweeper.n_trials=3", *TINY]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_optuna_search_proposes_repeatable_trials_and_reports_the_best(tmp_path):
    from mlflow.tracking import MlflowClient

    proposals = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        done = _optuna_search(folder)
        assert done.returncode == 0, done.stderr[-4000:]
        client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
        runs = client.search_runs([client.get_experiment_by_name("logreg").experiment_id])
        (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(children) == 3 == len(runs) - 1
        assert [c.info.status for c in children] + [parent.info.status] == ["FINISHED"] * 4
        assert parent.data.tags["sweep.sweeper"] == "OptunaSweeper"
        assert parent.data.tags["sweep.space.model.alpha"] == "tag(log, interval(1e-6, 1e-1))"
        swept = ("model.alpha", "model.penalty", "rebalance.strategy", "train.batch_size")
        trials = sorted(tuple(c.data.params[key] for key in swept) for c in children)
        for alpha, penalty, strategy, batch_size in trials:
            assert 1e-6 <= float(alpha) <= 1e-1 and penalty in ("l1", "l2")
            assert strategy in ("none", "undersample", "oversample", "smote", "class_weight")
            assert batch_size in ("16", "64", "256", "full")
        assert all(c.data.params["evaluate.baseline"] == "False" for c in children)
        proposals.append(trials)

        # Optuna's best trial is the child with the highest validation F1, and so is the
        # parent's best.run_id.
        (results,) = folder.glob("multirun/*/*/optimization_results.yaml")
        best = yaml.safe_load(results.read_text())
        best_f1 = max(c.data.metrics["val/f1"] for c in children)
        assert best["best_value"] == pytest.approx(best_f1, abs=1e-12)
        by_id = {c.info.run_id: c for c in children}
        assert by_id[parent.data.tags["best.run_id"]].data.metrics["val/f1"] == best_f1
    assert proposals[0] == proposals[1]  # the seeded sampler proposes the same trials
