"""The benchmarks run at tiny sizes and print or write what they promise (no timing checked)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_postgres, server_env

ROOT = Path(__file__).resolve().parents[1]


def run_quick(script: str, *args: str, timeout: int, env: dict | None = None):
    """A benchmark script run to its end; its stderr's tail shown when it fails."""
    completed = subprocess.run(
        [sys.executable, script, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


SECTION_KEYS = {
    "binary": {
        "xv_float64",
        "xv_float32",
        *(f"sgd_b{b}_{t}" for b in (32, 256, 4096, "full") for t in ("float64", "float32")),
        "sgd_b32_float64_progressive",
        "sgd_b256_float64_progressive",
        "sklearn_sgd",
        "tto_sgd_default",
        "tto_sgd_progressive",
        "tto_sgd_invscaling",
        "tto_newton",
        "tto_lbfgs",
        "tto_newton_cholesky",
        "newton_summary",
        "statsmodels_bse",
        *(f"fit1_{form}" for form in ("c", "fortran", "float32", "frame")),
        "fixed_epoch_b256",
        "fixed_cost",
        "copy_floor",
        *("fresh_pages", "gather_epoch", "rowmajor_c", "rowmajor_fortran"),
    },
    "large": {"xv_float64", "sgd_b256_float64", "sklearn_sgd", "tto_newton", "tto_lbfgs"},
    "multiclass": {"xv_float64", "sgd_b256_float32", "sklearn_sgd_ovr", "tto_lbfgs"},
}


@pytest.mark.slow
def test_quick_benchmark_writes_the_expected_json(tmp_path):
    out = tmp_path / "latest.json"
    completed = run_quick("bench/run.py", "--quick", "--out", str(out), timeout=120)
    assert "== goals" in completed.stdout

    report = json.loads(out.read_text())
    assert {"machine", "config", "sections", "memory", "goals"} <= set(report)
    assert report["config"]["quick"] is True
    assert report["machine"]["nproc"] >= 1 and report["machine"]["numpy"]
    for section, keys in SECTION_KEYS.items():
        results = report["sections"][section]["results"]
        assert keys <= set(results), f"{section} lacks {keys - set(results)}"
        for key, value in results.items():
            if key == "fixed_cost":  # a difference of two timings: noise can make it negative
                continue
            if value.get("median_s") is not None:  # None: a time-to-objective not reached
                assert value["median_s"] > 0, (section, key)
                assert all(sample > 0 for sample in value["samples_s"]), (section, key)
    parts = report["sections"]["binary"]["parts"]
    assert {
        "part_products_b32",
        "part_products_b256",
        "part_loss_pass",
        "part_shuffled_copy",
        "part_hessian_exact",
        "part_hessian_sampled",
    } <= set(parts)
    assert "where the time goes" in completed.stdout
    floors = completed.stdout.split("floors (")[1].split("\n\n")[0]
    for goal in ("fixed cost:", "time to 1e-4, the default schedule:", "Fortran-ordered X:"):
        assert goal in floors, f"no floor for {goal}"
    for value in report["memory"].values():
        assert value["peak_extra_bytes"] > 0 and value["peak_total_over_X"] > 1
    statuses = {goal["key"]: goal["status"] for goal in report["goals"]}
    assert {
        "sgd256_vs_xv",
        "sgd256_progressive_vs_xv",
        "sgd32_vs_sklearn",
        "sgd32_vs_sklearn_every_round",
        "sgd32_progressive_vs_sklearn",
        "tto_sgd_progressive_vs_lbfgs",
        "se_vs_statsmodels",
        "fixed_cost_vs_epoch",
        "fit1_fortran_vs_c",
        "fit1_frame_vs_c",
        "peak_memory",
    } <= set(statuses)
    assert set(statuses.values()) <= {"PASS", "MISS"}


@pytest.mark.slow
def test_quick_pipeline_benchmark_prints_every_stage_floor_and_goal():
    completed = run_quick("bench/pipeline.py", "--quick", timeout=600)
    out = completed.stdout
    for heading in ("== machine", "== stages", "== floors", "== train stage", "== goals"):
        assert heading in out, heading
    for key in ("cpus", "ram_gib", "python", "numpy"):
        assert f"{key}:" in out, key
    assert "N=20,000 D=10" in out
    table = out.split("== stages")[1].split("== floors")[0]
    for stage in ("prepare", "rebalance", "train", "evaluate", "total"):
        row = next(line for line in table.splitlines() if line.startswith(stage))
        numbers = [float(word.rstrip("sx")) for word in row.split()[1:] if word != "MiB"]
        assert numbers[0] > 0 and numbers[1] > 0, row  # seconds with tracking on and off
    per_stage = out.split("== each stage against its floor and goal")[1].split("== goals")[0]
    for stage in ("prepare", "rebalance", "train", "evaluate"):
        row = next(line for line in per_stage.splitlines() if line.startswith(stage))
        timing, memory = row.split("|")
        assert memory.split()[-1] in {"yes", "NO"}, row  # peak RSS / data read, goal 3x
        assert timing.split()[-1] in ({"yes", "NO"} if stage == "train" else {"-"}), row
        assert ("-" not in timing.split()[2]) == (stage != "evaluate"), row  # the floor's seconds
    tracking = next(line for line in per_stage.splitlines() if line.startswith("tracking"))
    # At this size the on - off difference is mostly noise, and may be negative.
    assert "goal <= 10%" in tracking and tracking.split()[-1] in {"yes", "NO", "noise"}
    goals = out.split("== goals")[1].strip().splitlines()
    labels = [line[6:].split("  ")[0].strip() for line in goals]
    assert labels == [
        "train stage / estimator fit (C-ordered)",
        "tracking share of the run",
        *(
            f"{stage} peak RSS / data read"
            for stage in ("prepare", "rebalance", "train", "evaluate")
        ),
    ]
    assert all(line.split()[0] in {"PASS", "MISS"} and "(goal <=" in line for line in goals[2:])
    assert goals[1].split()[0] in {"PASS", "MISS", "NOISE"}  # the tracking share


@pytest.mark.slow
def test_the_scale_benchmark_runs_and_its_engines_agree():
    completed = run_quick("bench/scale.py", "--quick", timeout=600)
    out = completed.stdout
    for line in ("in memory", "memmap cache", "Parquet decoded", "Dask partitions", "Newton Dask"):
        assert line in out
    # The train engine's figures: each of the four ways, for SGD and for Newton.
    for what in ("SGD epoch", "Newton iteration"):
        section = out[out.index(what) :]
        for name in ("numpy engine", "cached blocks", "Dask, row cache", "Dask, in memory"):
            assert re.search(rf"{name} +[0-9.]+ s +[0-9.]+x numpy engine", section), name
    # Not a timing: the two engines' answers, which the benchmark prints.
    same = next(line for line in out.splitlines() if line.startswith("same answer"))
    measured = re.match(r"same answer: optimum (\S+) relative .*standard errors (\S+) ", same)
    optimum, errors = float(measured[1]), float(measured[2])
    assert optimum <= 1e-8 and errors <= 1e-6


@pytest.mark.slow
def test_the_memory_benchmark_prints_each_stage_at_n_and_4n_with_its_goal():
    completed = run_quick("bench/scale_memory.py", "--quick", timeout=900)
    out = completed.stdout
    assert "ram_gib:" in out and "load:" in out
    assert "N=20,000 and 4N=80,000 rows x D=10" in out
    assert len(re.findall(r"^    train: [12] epochs in [0-9.]+ s", out, flags=re.MULTILINE)) == 2
    table = out.split("== peak RSS of the process tree")[1].split("load after")[0]
    rows = {line.split()[0]: line.split() for line in table.splitlines()[2:] if line.strip()}
    assert list(rows) == ["prepare", "rebalance", "train", "evaluate", "pipeline"]
    peaks = {}
    for stage, cells in rows.items():
        gb = [float(cell.removesuffix("GB")) for cell in cells if cell.endswith("GB")]
        small, large = gb[0], gb[1]  # the process tree's peak at N and at 4N
        # A Dask cluster of 2 workers and a driver: hundreds of MB, never nothing.
        assert 0.1 < small < 20 and 0.1 < large < 20, cells
        growth = float(next(cell for cell in cells if cell.endswith("x") and "<=" not in cell)[:-1])
        # Not a timing: the printed ratio is the quotient of the peaks, which are printed
        # rounded to 0.01 GB (and the ratio to 0.01).
        low, high = (large - 0.005) / (small + 0.005), (large + 0.005) / (small - 0.005)
        assert low - 0.005 <= growth <= high + 0.005, cells
        assert cells[-1] == ("yes" if large <= 2.5 and growth <= 1.25 else "NO"), cells
        peaks[stage] = (small, large)
    stages = [peak for stage, peak in peaks.items() if stage != "pipeline"]
    assert peaks["pipeline"] == (max(s for s, _ in stages), max(big for _, big in stages))


SWEEPS = ["joblib", "joblib, no tracking", "dask", "dask + server", "dask, no tracking"]


@pytest.mark.slow
def test_the_sweep_benchmark_prints_every_configuration_and_where_the_time_goes():
    require_postgres()  # the team server's row
    completed = run_quick("bench/sweep.py", "--quick", timeout=900, env=server_env())
    out = completed.stdout
    machine = out.split("== machine\n")[1].splitlines()[0]
    assert re.search(r", \d+ cores \(\d+ usable\)", machine), machine

    table = out.split("== sweeps (4 jobs, 2 slots each")[1].split("== where the time goes")[0]
    lines = [line for line in table.splitlines()[2:] if line and not line.startswith("cpu:")]
    rows = {line[:20].strip(): line[20:].split() for line in lines}
    assert list(rows) == SWEEPS
    wall = {name: float(row[0]) for name, row in rows.items()}
    cpu = {name: float(row[-2] if row[1] == "-" else row[6]) for name, row in rows.items()}
    assert all(seconds > 0 for seconds in [*wall.values(), *cpu.values()])
    for name, reference, goal in (("dask", "joblib", "1.2x"), ("dask + server", "dask", "1.3x")):
        ratio, named, _, printed_goal, met = rows[name][1:6]
        # Not a timing: the printed ratio is the quotient of the printed wall times.
        assert float(ratio.rstrip("x")) == pytest.approx(wall[name] / wall[reference], abs=0.01)
        assert (named, printed_goal) == (reference, goal)
        assert met == ("yes" if float(ratio.rstrip("x")) <= float(goal.rstrip("x")) else "NO")
        cpu_ratio = float(rows[name][7].rstrip("x"))
        assert cpu_ratio == pytest.approx(cpu[name] / cpu[reference], abs=0.01)
    unrated = ("joblib", "joblib, no tracking", "dask, no tracking")
    assert all(rows[name][1] == "-" for name in unrated)
    assert all(float(row[-1]) >= 0 for row in rows.values())  # the load average

    parts = out.split("== where the time goes")[1].splitlines()
    header = parts[1].split()
    assert header[:3] == ["configuration", "sweep", "start"] and header[-1] == "busy"
    breakdown = {line[:20].strip(): line[20:].split() for line in parts[2:7]}
    assert list(breakdown) == SWEEPS
    for name, cells in breakdown.items():
        assert len(cells) == 9, name
        sweep_start, _, data, fit = map(float, cells[:4])
        assert sweep_start > 0 and data > 0 and fit > 0, name
        assert 0 < float(cells[-1].rstrip("%")) <= 100, name
    # tracking: each launcher's against its own sweep without tracking
    assert float(breakdown["dask, no tracking"][6]) == 0.0
    assert float(breakdown["joblib, no tracking"][6]) == 0.0


@pytest.mark.slow
def test_the_larger_than_ram_benchmark_trains_on_rows_of_prepares_table():
    completed = run_quick("bench/larger_than_ram.py", "--quick", timeout=600)
    out = completed.stdout
    assert "N=100,000 x D=10 float64" in out
    assert "training split: 100,000 rows written" in out
    fitted = re.search(r"train: (\d+) epochs in .*\n  iterations: (\d+); seconds each: (.*)", out)
    assert fitted is not None and fitted[1] == fitted[2] == str(len(fitted[3].split())), out
    assert re.search(r"peak RSS [0-9.]+ GB = [0-9.]+x the features", out)
    # The training rows follow prepare's model: a split drawn from another model (another
    # seed) scores near chance on prepare's test rows (ROC-AUC 0.5; the data's is ~0.9).
    scores = dict(re.findall(r"(roc_auc|pr_auc|f1|prevalence) ([0-9.]+)", out))
    assert float(scores["roc_auc"]) > 0.8, scores
    assert float(scores["pr_auc"]) > 2 * float(scores["prevalence"]), scores
