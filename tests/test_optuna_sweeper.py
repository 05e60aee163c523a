"""``hydra/sweeper=logreg_optuna``: the search space, failed trials, and stop-and-resume.

A tiny Hydra app (written to tmp_path) stands in for the pipeline: its objective is a
known function of the proposed ``x``, each job appends its ``x`` to a log, and one job
can hang until the test kills the whole sweep, as a user's Ctrl-C or a lost machine would.
The project's own search runs in tests/test_run_sweep.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hydra_plugins.logreg_optuna_sweeper._core import search_space
from logreg.errors import UserError

APP = """
import os
import time
from pathlib import Path

import hydra


@hydra.main(config_path=".", config_name="search", version_base=None)
def job(cfg):
    log = Path(os.environ["JOB_LOG"])
    with log.open("a") as out:
        out.write(f"{cfg.x}\\n")
    (log.parent / f"pid-{os.getpid()}").touch()
    if len(log.read_text().splitlines()) == int(os.environ.get("HANG_AT", 0)):
        Path(os.environ["JOB_LOG"] + ".hanging").write_text(str(cfg.x))
        time.sleep(600)  # until the test kills the sweep
    if cfg.x > 0.9:
        raise RuntimeError("x above 0.9 fails")
    return -((cfg.x - 0.3) ** 2)


if __name__ == "__main__":
    job()
"""

SEARCH = """
defaults:
  - override hydra/sweeper: logreg_optuna
  - _self_
x: 0.0
hydra:
  sweeper:
    study_name: toy
    n_trials: 6
    sampler:
      _target_: optuna.samplers.RandomSampler
      seed: 1
    params:
      x: interval(0.0, 1.0)
"""


def _command(tmp_path: Path) -> list[str]:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "search.yaml").write_text(SEARCH)
    storage = f"hydra.sweeper.storage=sqlite:///{tmp_path / 'study.db'}"
    return [sys.executable, "app.py", "-m", storage]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "JOB_LOG": str(tmp_path / "jobs.log"), **extra}


def _study(tmp_path: Path) -> optuna.Study:
    return optuna.load_study(study_name="toy", storage=f"sqlite:///{tmp_path / 'study.db'}")


def test_the_space_reads_hydras_grammar():
    fixed, space = search_space(
        {
            "model.alpha": "tag(log, interval(1e-6, 1e-1))",
            "model.penalty": "choice(l1, l2)",
            "train.epochs": "tag(int, interval(5, 50))",
            "train.tol": "interval(0, 1)",
            "train.batch_size": "choice(16, 64)",
        },
        ["train.batch_size=16,full", "data=spam7", "model.penalty=l2"],
    )
    assert fixed == ["data=spam7", "model.penalty=l2"]  # a fixed value beats a searched one
    assert space == {
        "model.alpha": FloatDistribution(1e-6, 1e-1, log=True),
        "train.epochs": IntDistribution(5, 50),
        "train.tol": FloatDistribution(0.0, 1.0),
        "train.batch_size": CategoricalDistribution([16, "full"]),  # the command line wins
    }


def test_a_space_that_is_not_a_sweep_is_one_clear_error():
    with pytest.raises(UserError, match=r"hydra.sweeper.params"):
        search_space({"model.alpha": "interval(1e-6"}, [])


def test_a_failed_trial_counts_and_the_search_goes_on(tmp_path):
    done = subprocess.run(
        _command(tmp_path), cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    trials = _study(tmp_path).get_trials()
    assert len(trials) == 6
    for trial in trials:
        x = trial.params["x"]
        if x > 0.9:
            assert trial.state == TrialState.FAIL and "x above 0.9" in trial.user_attrs["error"]
        else:
            assert trial.state == TrialState.COMPLETE and trial.value == pytest.approx(
                -((x - 0.3) ** 2)
            )
    # The seeded sampler, independently: the same six proposals.
    sampler = optuna.samplers.RandomSampler(seed=1)
    reference = optuna.create_study(sampler=sampler)
    expected = [reference.ask({"x": FloatDistribution(0.0, 1.0)}).params["x"] for _ in range(6)]
    assert [t.params["x"] for t in trials] == pytest.approx(expected)


def test_a_killed_search_resumes_with_the_remaining_trials_only(tmp_path):
    command, hanging = _command(tmp_path), tmp_path / "jobs.log.hanging"
    sweep = subprocess.Popen(
        command, cwd=tmp_path, env=_env(tmp_path, HANG_AT="3"), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not hanging.exists() and time.monotonic() < deadline and sweep.poll() is None:
        time.sleep(0.1)
    assert hanging.exists(), "the third job never started"
    os.killpg(sweep.pid, signal.SIGKILL)
    sweep.wait(timeout=30)
    interrupted_x = float(hanging.read_text())
    before = _study(tmp_path).get_trials()
    assert [t.state for t in before] == [TrialState.COMPLETE] * 2 + [TrialState.RUNNING]

    done = subprocess.run(
        command, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    after = _study(tmp_path).get_trials()
    assert after[2].state == TrialState.FAIL and "error" not in after[2].user_attrs
    ran = [t for t in after if t.state == TrialState.COMPLETE or "error" in t.user_attrs]
    assert len(ran) == 6, "n_trials counts the first run's trials"
    xs_logged = [float(x) for x in (tmp_path / "jobs.log").read_text().split()]
    assert len(xs_logged) == 3 + 4, "the second run ran the four trials still missing"
    assert xs_logged[3] == interrupted_x, "the interrupted proposal ran again first"


@pytest.mark.slow
def test_trials_run_in_parallel_on_dask_workers(tmp_path):
    command = [*_command(tmp_path), "hydra/launcher=dask", "hydra.launcher.n_workers=2"]
    command += ["hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=4"]
    done = subprocess.run(
        command, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(_study(tmp_path).get_trials()) == 4
    assert len(list(tmp_path.glob("pid-*"))) == 2, "two worker processes ran the trials"
