"""The search: a space from Hydra's override grammar, then ask → launch → tell, batch by batch.

Stopping and resuming. With a database ``storage`` the study outlives the process;
with ``mlflow=server`` on this host's team server (``python -m logreg.tracking.server``)
and no storage set, the study goes to that server's PostgreSQL. Run
the same command again and the study is loaded (``load_if_exists``): only the trials it
still lacks run (``n_trials`` counts those of earlier runs). A trial that was running
when the sweep was killed is marked FAIL and queued again with its parameters, so no
proposal is lost; a trial whose job failed counts as run. One sweep process per study
at a time: a second one would take the first one's running trials for interrupted ones.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.core.utils import JobStatus
from hydra.utils import instantiate
from omegaconf import OmegaConf

from logreg.errors import UserError
from logreg.io import write_text

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"  # in the sweep folder, as Hydra's Optuna sweeper
ERROR_ATTR = "error"  # on a trial whose job failed: it ran, and counts as run


def search(sweeper: Any, arguments: Sequence[str]) -> None:
    import optuna

    settings, config = sweeper.settings, sweeper.config
    fixed, space = search_space(settings.get("params") or {}, arguments)
    n_trials, n_jobs = _count(settings, "n_trials"), _count(settings, "n_jobs")
    sampler = settings.get("sampler")  # Hydra instantiated it with the sweeper
    if isinstance(sampler, Mapping) or OmegaConf.is_config(sampler):
        sampler = instantiate(sampler)
    storage = settings.get("storage") or _team_server_storage(config)
    study = optuna.create_study(
        study_name=settings.get("study_name") or "logreg",
        storage=storage,
        sampler=sampler,
        direction=settings.get("direction", "maximize"),
        load_if_exists=True,
    )
    requeued = requeue_interrupted(study)
    remaining = n_trials - trials_run(study)
    log.info(
        f"Optuna study '{study.study_name}': {trials_run(study)} trials run before, "
        f"{requeued} interrupted and queued again, {max(remaining, 0)} to run"
    )
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")
    while remaining > 0:
        trials = [study.ask(space) for _ in range(min(n_jobs, remaining))]
        batch = [[*fixed, *(_override(k, v) for k, v in t.params.items())] for t in trials]
        returns = sweeper.launcher.launch(batch, initial_job_idx=trials[0].number)
        for trial, ret in zip(trials, returns, strict=True):
            _tell(study, trial, ret)
        remaining -= len(trials)
    _write_results(study, sweep_dir / RESULTS_FILE)


def _team_server_storage(config: Any) -> str | None:
    """With ``mlflow=server`` on this host's team server: its optuna database."""
    from logreg.tracking.server import study_storage

    storage = study_storage(OmegaConf.select(config, "mlflow.tracking_uri"))
    if storage is not None:
        log.info("Optuna study stored in the team server's PostgreSQL (optuna database)")
    return storage


def search_space(
    params: Mapping[str, str], arguments: Sequence[str]
) -> tuple[list[str], dict[str, Any]]:
    """The fixed overrides, and the distribution of each searched key.

    ``params`` (``hydra.sweeper.params``) and the command line's sweep overrides use
    Hydra's grammar: ``choice(a, b)`` or ``a,b`` is categorical, ``range(…)`` too;
    ``interval(lo, hi)`` is a float (an int when tagged ``int``: ``tag(int, interval(…))``),
    on a log scale when tagged ``log``.
    """
    parser = OverridesParser.create()
    overrides = [f"{key}={value}" for key, value in params.items()] + list(arguments)
    try:
        parsed = parser.parse_overrides(overrides)
    except Exception as exc:  # Hydra's grammar errors: one line naming the override
        raise UserError(f"hydra.sweeper.params: {exc}".splitlines()[0]) from None
    fixed, space = [], {}
    for override in parsed:
        key = override.get_key_element()
        if not override.is_sweep_override():
            space.pop(key, None)  # a later fixed value replaces a searched one
            fixed = [o for o in fixed if not o.startswith(f"{key}=")]
            fixed.append(override.input_line)
        else:
            fixed = [o for o in fixed if not o.startswith(f"{key}=")]
            space[key] = _distribution(key, override.value())
    return fixed, space


def _distribution(key: str, sweep: Any) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if isinstance(sweep, ChoiceSweep):
        return CategoricalDistribution(list(sweep.list))
    if isinstance(sweep, RangeSweep):
        return CategoricalDistribution(list(_range(sweep)))
    if isinstance(sweep, IntervalSweep):
        log_scale = "log" in sweep.tags
        if "int" in sweep.tags:
            return IntDistribution(int(sweep.start), int(sweep.end), log=log_scale)
        return FloatDistribution(float(sweep.start), float(sweep.end), log=log_scale)
    raise UserError(f"hydra.sweeper.params.{key}: {sweep} is not a choice, range or interval")


def _range(sweep: RangeSweep) -> range | list[float]:
    start, stop, step = sweep.start, sweep.stop, sweep.step
    if all(isinstance(x, int) for x in (start, stop, step)):
        return range(start, stop, step)
    return [start + i * step for i in range(math.ceil((stop - start) / step))]


def requeue_interrupted(study: Any) -> int:
    """Trials left RUNNING by a killed sweep: FAIL them and queue their parameters again."""
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in running:
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)
    return len(running)


def trials_run(study: Any) -> int:
    """Trials that ran to an end: complete, or failed by their job (not interrupted)."""
    from optuna.trial import TrialState

    return sum(
        t.state == TrialState.COMPLETE
        or (t.state == TrialState.FAIL and ERROR_ATTR in t.user_attrs)
        for t in study.get_trials(deepcopy=False)
    )


def _tell(study: Any, trial: Any, ret: Any) -> None:
    from optuna.trial import TrialState

    value = ret._return_value if ret.status == JobStatus.COMPLETED else None
    if isinstance(value, int | float) and math.isfinite(value):
        study.tell(trial, float(value))
        return
    error = value if ret.status == JobStatus.COMPLETED else ret._return_value
    message = f"returned {error!r}, not a number" if ret.status == JobStatus.COMPLETED else error
    trial.set_user_attr(ERROR_ATTR, f"{message}"[:500])
    log.warning(f"trial {trial.number} failed: {message}")
    study.tell(trial, state=TrialState.FAIL)


def _override(key: str, value: Any) -> str:
    return f"{key}={value}"


def _write_results(study: Any, path: Path) -> None:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    results: dict[str, Any] = {"name": "optuna", "study_name": study.study_name}
    if complete:
        results |= {"best_params": study.best_params, "best_value": study.best_value}
    write_text(path, OmegaConf.to_yaml(OmegaConf.create(results)))
    log.info(f"Best: {results.get('best_params')} -> {results.get('best_value')}")


def _count(settings: Mapping[str, Any], key: str) -> int:
    value = settings.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"hydra.sweeper.{key}: got {value!r}; allowed: an integer >= 1")
    return value
