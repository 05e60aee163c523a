"""The comparison report (python -m logreg.compare) on two real pipeline runs.

The runs are the four stages run in-process (as a sweep's job runs them) on tiny
synthetic data, tracked in an sqlite store in tmp_path; they differ in exactly two
params, which the report must list and nothing else.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from logreg import compare, pipeline
from logreg.compare import Run, differing_params, interval, loss_figure, metrics_table, pr_figure
from logreg.params import compose
from logreg.run import run_pipeline
from logreg.tracking.runs import read_run_file

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data=synthetic", "data.n_samples=400", "train.epochs=5", "evaluate.baseline=false"]
EPOCHS = 5


@pytest.fixture
def two_runs(isolated_tracking: Path) -> list[str]:
    """Two tracked pipeline runs: l1 at batch 16 and l2 at batch 64."""
    ids = []
    for name, overrides in (
        ("a", ["model.penalty=l1", "train.batch_size=16"]),
        ("b", ["model.penalty=l2", "train.batch_size=64"]),
    ):
        params = compose(ROOT / "conf", [*TINY, *overrides])
        job = isolated_tracking / name
        run_pipeline(params, job)
        ids.append(read_run_file(pipeline.layout(job)["train"].run_file)["run_id"])
    return ids


def test_the_report_lists_exactly_the_differing_params_and_overlays_two_curves(two_runs):
    out = Path("reports/compare.md")
    compare.main([*two_runs, "--out", str(out)])

    runs = [compare.resolve(run_id, None) for run_id in two_runs]
    params = differing_params(runs)
    assert sorted(params.index) == ["model.penalty", "train.batch_size"]
    assert params.loc["model.penalty"].tolist() == ["l1", "l2"]
    assert params.loc["train.batch_size"].tolist() == ["16", "64"]

    text = out.read_text()
    section = text.split("## Params that differ")[1].split("## Metrics")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    listed = [row.split("|")[1].strip(" `") for row in rows]
    assert listed == ["model.penalty", "train.batch_size"]
    for run in runs:  # the metrics read back are the ones the runs logged
        assert f"{run.metrics['test/f1']:.3f}" in text

    for name in ("pr_curves.png", "loss_curves.png"):
        assert (out.parent / "compare" / name).read_bytes()[:4] == b"\x89PNG"
    assert len(pr_figure(runs).axes[0].get_lines()) == 2
    losses = loss_figure(runs).axes[0].get_lines()
    assert len(losses) == 4  # train and val, per run
    assert all(len(line.get_xdata()) == EPOCHS for line in losses)


def test_an_unknown_name_fails_in_one_line(isolated_tracking, capsys):
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["no-such-run", "0123456789abcdef0123456789abcdef"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert "no-such-run: neither an MLflow run id" in err.splitlines()[-1]


def _run(label: str, params: dict, metrics: dict) -> Run:
    import pandas as pd

    return Run(label, label, "MLflow run", params, metrics, pd.DataFrame(), None)


def test_diff_keeps_a_param_missing_from_one_run_and_drops_equal_ones():
    runs = [
        _run("a", {"x": "1", "y": "2", "only_a": "3"}, {}),
        _run("b", {"x": "1", "y": "5"}, {}),
    ]
    table = differing_params(runs)
    assert table.to_dict("index") == {
        "only_a": {"a": "3", "b": "—"},
        "y": {"a": "2", "b": "5"},
    }


def test_intervals_are_shown_when_present_and_a_dash_when_absent():
    with_ci = {"test/f1": 0.25, "test/ci95/f1/low": 0.2, "test/ci95/f1/high": 0.3}
    flat_ci = {"test/f1": 0.5, "test_f1_ci95_low": 0.4, "test_f1_ci95_high": 0.6}
    assert interval(with_ci, "f1") == (0.2, 0.3)
    assert interval(flat_ci, "f1") == (0.4, 0.6)
    runs = [_run("a", {}, with_ci), _run("b", {}, {"test/f1": 0.5}), _run("c", {}, flat_ci)]
    row = metrics_table(runs).loc["test F1"].tolist()
    assert row == ["0.250 [0.200, 0.300]", "0.500 [—]", "0.500 [0.400, 0.600]"]
    assert metrics_table(runs).loc["test recall"].tolist() == ["— [—]"] * 3
    assert isinstance(pr_figure(runs), Figure)  # no curve at all still draws


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.mark.slow
def test_a_dvc_experiment_is_read_from_its_commit(tmp_path, monkeypatch):
    """A commit (HEAD) and a saved DVC experiment in a scratch repository, compared."""
    if shutil.which("git") is None:
        pytest.skip("needs git (apt-get install git)")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.chdir(tmp_path)
    dvc = str(Path(sys.executable).parent / "dvc")
    _git("init", "-q", cwd=tmp_path)
    _git("config", "user.email", "test@example.com", cwd=tmp_path)
    _git("config", "user.name", "test", cwd=tmp_path)
    subprocess.run([dvc, "init", "-q"], cwd=tmp_path, check=True, timeout=120)
    (tmp_path / "reports" / "plots").mkdir(parents=True)
    params = tmp_path / "params.yaml"
    metrics = tmp_path / "reports" / "metrics.json"
    params.write_text("model:\n  penalty: l1\n  alpha: 0.01\ntrain:\n  max_time: null\n")
    ci = {"f1": {"low": 0.2, "high": 0.3}}
    metrics.write_text(json.dumps({"test": {"f1": 0.25, "ci95": ci}}))
    (tmp_path / "reports" / "plots" / "pr.csv").write_text(
        "recall,precision,threshold\n1.0,0.1,0.0\n0.5,0.5,0.5\n"
    )
    _git("add", "-A", cwd=tmp_path)
    _git("commit", "-qm", "baseline", cwd=tmp_path)
    params.write_text(params.read_text().replace("0.01", "0.1"))
    metrics.write_text(json.dumps({"test": {"f1": 0.15}}))
    subprocess.run([dvc, "exp", "save", "-n", "sparse"], cwd=tmp_path, check=True, timeout=120)

    compare.main(["HEAD", "sparse", "--out", "reports/compare.md", "--params", "none.yaml"])

    head, sparse = compare.resolve("HEAD", None), compare.resolve("sparse", None)
    assert differing_params([head, sparse]).to_dict("index") == {
        "model.alpha": {"HEAD": "0.01", "sparse": "0.1"}
    }
    assert head.params["train.max_time"] == "null"  # as MLflow logs None
    table = metrics_table([head, sparse])
    assert table.loc["test F1"].tolist() == ["0.250 [0.200, 0.300]", "0.150 [—]"]
    assert head.pr is not None and len(head.pr) == 2
    assert len(pr_figure([head, sparse]).axes[0].get_lines()) == 2
    assert "`model.alpha`" in (tmp_path / "reports" / "compare.md").read_text()
