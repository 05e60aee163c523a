"""Hydra runner: the four stages for one composed config, in-process, in the job's own folder.

    python -m logreg.run                                   # one run  -> outputs/<date>/<time>/
    python -m logreg.run model.penalty=l1 data=spam7       # any override of conf/
    python -m logreg.run -m train.batch_size=16,256 model.penalty=l1,l2      # a sweep
    python -m logreg.run -m hydra/launcher=joblib hydra.launcher.n_jobs=2 \\
        rebalance.strategy=none,smote                      # jobs in parallel processes
    python -m logreg.run -m hydra/launcher=dask train.batch_size=16,256  # jobs on Dask
    python -m logreg.run -m search=optuna                  # a Bayesian search, not a grid

Each job writes its composed config to ``<job>/params.yaml``, for the record, and calls
the stage functions ``prepare``, ``rebalance``, ``train`` and ``evaluate`` in-process
(:func:`logreg.pipeline.run_stages`) with the paths of ``dvc repro``, every one inside
the job folder (``multirun/<date>/<time>/<job number>/`` in a sweep). The task returns
the validation F1, so a Hydra sweeper can optimise it.

Config is checked at the edges, once each:

- before Hydra starts any job, :func:`check_jobs` composes every job's config and
  checks it against the schema (:mod:`logreg.schema`): a bad value, or a sweep
  combination that cannot run (``model=newton`` with ``model.penalty=l1``), fails at once
  in one line that names the job, and so does a Hydra error such as an unknown config
  group option;
- each job (:func:`task`, :func:`run_pipeline`) checks its own composition once, as a
  search sweeper's proposals are only known then, and hands the checked sections to the
  stage functions, which check nothing again. So does each stage's ``main`` under
  ``dvc repro``, for its own sections. The estimator keeps its own checks, for callers
  who use it without the pipeline.

MLflow: a single run is one top-level run, as with ``dvc repro``. A sweep gets one parent
run (:class:`SweepParentRun`, a Hydra callback in ``conf/hydra/default.yaml``): it is
created, with the store and the experiment, before any job starts; every job's run is
its child; at the end the parent records the best child (:mod:`logreg.ranking`). The
store is ``<cwd>/mlflow.db`` unless ``mlflow.tracking_uri`` or ``MLFLOW_TRACKING_URI``
says otherwise. Config comes from ``<cwd>/conf`` when present, else from the source
checkout.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import copy
import itertools
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from logreg import pipeline, ranking, schema, sweep_jobs
from logreg.errors import UserError, cli, one_line_warnings
from logreg.io import write_text
from logreg.tracking.provenance import git_info, project_root
from logreg.tracking.runs import open_tracker

PARAMS_HEADER = "# The composed config of this job (python -m logreg.run), as its stages ran it.\n"


def conf_dir() -> Path:
    """``conf/`` of the project root (``$DVC_ROOT`` or cwd), else of the source checkout."""
    checkout = Path(__file__).resolve().parents[2]  # src/logreg/run.py -> the repository
    for root in (project_root(), checkout):
        if (root / "conf" / "config.yaml").is_file():
            return root / "conf"
    raise UserError(
        f"conf/config.yaml not found in {project_root()} or {checkout}; run from the project "
        "root or pass --config-dir"
    )


def run_pipeline(params: Mapping[str, Any], job_dir: str | Path) -> dict[str, Any]:
    """Check the whole config once, write ``<job_dir>/params.yaml``, run the four stages.

    The stage functions get the checked sections and raise on failure (which fails the
    Hydra job). Returns evaluate's metrics.
    """
    checked = schema.validate(params)  # the whole config: a section no stage reads is an error too
    job_dir = Path(job_dir).resolve()
    params_yaml = OmegaConf.to_yaml(OmegaConf.create(dict(params)))
    write_text(job_dir / pipeline.PARAMS_FILE, PARAMS_HEADER + params_yaml)
    return pipeline.run_stages(checked, job_dir)


def validation_f1(metrics: Mapping[str, Any]) -> float | None:
    """F1 of the ``val`` section (binary ``f1`` at threshold 0.5, multiclass ``f1_macro``)."""
    return ranking.score(metrics.get("val") or {}, "f1")


def task(cfg: DictConfig) -> float | None:
    """One Hydra job: the pipeline in the job's output folder; returns the validation F1.

    A single run reports a user error in one line and exits 2, like the stages; in a
    sweep the error fails the job, and Hydra reports it with the job's overrides.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    params = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(params, dict)
    run_job = cli(run_pipeline) if hydra_cfg.mode == RunMode.RUN else run_pipeline
    # A sweep's job may run in a joblib worker process, outside main's cli wrapper.
    with one_line_warnings():
        return validation_f1(run_job(params, hydra_cfg.runtime.output_dir))


# ----------------------------------------------------------------------------- checks


def check_command_line(argv: Sequence[str], config_dir: Path) -> int:
    """Check every job of ``python -m logreg.run [argv]`` before Hydra starts any.

    Returns the number of job configs checked; 0 when Hydra is asked for something other
    than running jobs (``--help``, ``--cfg``, ...) or the config comes from elsewhere
    (``--config-dir``), which the jobs then check themselves.
    """
    args = _hydra_arguments(argv)
    if args is None:
        return 0
    other = (args.help, args.hydra_help, args.cfg, args.info, args.shell_completion)
    if any(other) or args.experimental_rerun or args.config_dir or args.config_path:
        return 0
    return check_jobs(args.overrides, args.multirun, config_dir, args.config_name or "config")


def _hydra_arguments(argv: Sequence[str]) -> argparse.Namespace | None:
    """``argv`` read as ``hydra.main`` reads it: its flags, and the overrides.

    This is the one use of ``hydra._internal``. Hydra 1.3 has no public parser for its
    command line; ``hydra.main`` parses ``sys.argv`` with this one, so the check sees
    the same overrides and flags as the jobs will. None when a word is not Hydra's
    (Hydra then prints its usage itself).
    """
    from hydra._internal.utils import get_args_parser

    try:
        args, unknown = get_args_parser().parse_known_args(list(argv))
    except SystemExit:  # a malformed flag
        return None
    return None if unknown else args


def check_jobs(
    overrides: Sequence[str],
    multirun: bool,
    config_dir: str | Path,
    config_name: str = "config",
) -> int:
    """Compose and check (:func:`logreg.schema.validate`) the config of every job.

    A multirun expands the sweep into its jobs, as Hydra's basic sweeper does. Composing
    takes Hydra a tenth of a second, too long for every job of a 40-job sweep, so each
    distinct set of group overrides (``data=spam7``, ``hydra/launcher=joblib``) is
    composed once and the jobs' plain value overrides (``train.batch_size=16``) are set
    on a copy of it, as Hydra sets them. Under another sweeper (``search=optuna``) the
    jobs are only known as it proposes them: the overrides that are not sweeps are
    checked once, and each proposed job checks its own config. Raises a one-line
    UserError naming the job. Returns the number of job configs checked.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from logreg.params import one_line

    parser = OverridesParser.create()
    composed: dict[tuple[str, ...], Any] = {}
    with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base=None):
        try:
            parsed = parser.parse_overrides(list(overrides))
            fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
            if not multirun:
                jobs = [list(overrides)]
            elif _selected_sweeper(compose, config_name, fixed) not in (_grid_sweeper(), None):
                jobs = [fixed]
            else:
                jobs = _grid(parsed)
        except HydraException as exc:
            raise UserError(f"cannot parse the overrides: {one_line(exc)}") from None
        for job in jobs:
            where = f"job [{' '.join(job)}]: " if multirun else ""
            try:
                cfg = _compose_job(job, parser, composed, compose, config_dir, config_name)
                params = OmegaConf.to_container(cfg, resolve=True)
            except (HydraException, OmegaConfBaseException) as exc:
                raise UserError(f"{where}cannot compose the config: {one_line(exc)}") from None
            try:
                schema.validate(params)  # type: ignore[arg-type]
            except UserError as exc:
                raise UserError(f"{where}{exc}") from None
    return len(jobs)


def _grid(overrides: list[Any]) -> list[list[str]]:
    """The jobs of a grid sweep: every combination of the swept values, in Hydra's order.

    Hydra's basic sweeper expands a sweep the same way (a later override of a key takes
    its place); it takes lists and ``range()``, not intervals.
    """
    from hydra.errors import HydraException

    axes: dict[str, list[str]] = {}
    for override in overrides:
        key = override.get_key_element()
        if not override.is_sweep_override():
            axes[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            axes[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:  # an interval
            raise HydraException(
                f"{override.input_line}: a grid sweeps lists and range(), not interval(); "
                "search=optuna searches intervals"
            )
    return [list(job) for job in itertools.product(*axes.values())]


def _grid_sweeper() -> str:
    """The import path of Hydra's default sweeper, the grid (``hydra/sweeper=basic``)."""
    from hydra.core.config_store import ConfigStore

    return str(ConfigStore.instance().load("hydra/sweeper/basic.yaml").node._target_)


def _selected_sweeper(compose: Any, name: str, overrides: list[str]) -> str | None:
    """The sweeper the config selects, or None when it does not compose (the jobs say why)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return _sweeper(compose(config_name=name, overrides=overrides, return_hydra_config=True))
    except (HydraException, OmegaConfBaseException):
        return None


def _sweeper(cfg: DictConfig) -> str:
    """The import path of the sweeper a composed config (with its ``hydra`` node) selects.

    A path, not the class: Hydra's plugin discovery may import its own copy of a module.
    """
    return str(cfg.hydra.sweeper._target_)


def _compose_job(
    job: list[str],
    parser: Any,
    composed: dict[tuple[str, ...], Any],
    compose: Any,
    config_dir: str | Path,
    name: str,
) -> Any:
    """The job's config: its group overrides composed (once), its value overrides set."""
    from hydra.core.override_parser.types import OverrideType

    groups, values = [], []
    for override in parser.parse_overrides(job):
        plain_value = (
            override.type == OverrideType.CHANGE
            and override.package is None
            and not override.key_or_group.startswith("hydra")
            and "/" not in override.key_or_group
            and not (Path(config_dir) / override.key_or_group).is_dir()  # a config group
            and isinstance(override.value(), str | int | float | bool | type(None))
        )
        (values if plain_value else groups).append(override)
    key = tuple(o.input_line for o in groups)
    if key not in composed:
        composed[key] = compose(config_name=name, overrides=list(key))
    cfg = copy.deepcopy(composed[key])
    for override in values:
        current = OmegaConf.select(cfg, override.key_or_group, default=_ABSENT)
        if current is _ABSENT or OmegaConf.is_config(current):
            return compose(config_name=name, overrides=job)  # not a plain value: let Hydra say
        OmegaConf.update(cfg, override.key_or_group, override.value(), merge=True)
    return cfg


_ABSENT = object()


# ----------------------------------------------------------------------------- sweeps


class SweepParentRun(Callback):
    """Hydra callback: one MLflow parent run per sweep, the best child recorded at the end.

    ``on_multirun_start`` opens the store and the experiment (once, before any job can
    race to create them), creates the parent run, records the sweep's overrides and
    hands the parent's id to every job as the override ``mlflow.parent_run_id``; the
    override travels with the job, also to the joblib launcher's worker processes.
    ``on_multirun_end`` tags the best child by validation F1, describes the sweep (what
    it compared, how its jobs ended, the best child: :func:`sweep_description`) and ends
    the parent FINISHED. A sweep that fails never reaches it: the parent then ends
    FAILED at exit.
    """

    def __init__(self) -> None:
        self.tracker: Any = None
        self.compared: dict[str, str] = {}
        self.sweep_dir = Path()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        mlflow_cfg = OmegaConf.to_container(config.mlflow, resolve=True)
        assert isinstance(mlflow_cfg, dict)
        if not mlflow_cfg.get("enabled", True) or mlflow_cfg.get("parent_run_id"):
            return  # no tracking, or the user nests the sweep under a run of their own
        overrides = [str(o) for o in config.hydra.overrides.task]
        space = _search_space(config.hydra.sweeper)
        tracker = open_tracker(mlflow_cfg)
        tracker.open_run(
            run_name=f"sweep-{config.data.name}",
            tags={
                **git_info(project_root()),
                "sweep": "parent",
                "sweep.overrides": " ".join(overrides),
                "sweep.hydra_overrides": " ".join(map(str, config.hydra.overrides.hydra)),
                "sweep.dir": Path(config.hydra.sweep.dir).resolve(),
                "sweep.sweeper": _sweeper(config).rsplit(".", 1)[-1],
                **{f"sweep.space.{key}": value for key, value in space.items()},
                "dataset.name": config.data.name,
            },
        )
        self.tracker = tracker
        self.compared = _swept(overrides) | space
        self.sweep_dir = Path(config.hydra.sweep.dir).resolve()
        atexit.register(self._finish, "FAILED")
        tracker.log_params({"sweep": dict(_split_override(o) for o in overrides)})
        tracker.flush()  # now, before the jobs: a sweep killed later keeps what it compared
        config.hydra.overrides.task.append(f"mlflow.parent_run_id='{tracker.run_id}'")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._finish("FINISHED")

    def _finish(self, status: str) -> None:
        """Record the children, the best one and the description; end the parent run.

        Also when the sweep failed (at exit, ``FAILED``): a job that failed every attempt
        fails the sweep after the other jobs ran, and the parent still says how the jobs
        ended and which finished child is best. A tracking error then only warns, so the
        run still ends.
        """
        atexit.unregister(self._finish)
        if self.tracker is None:
            return
        try:
            self._describe()
        except Exception as exc:
            if status == "FINISHED":
                raise
            warnings.warn(f"mlflow: could not describe the failed sweep: {exc}", stacklevel=1)
        self.tracker.close_run(status)
        print(f"mlflow: sweep run {self.tracker.run_id} ended {status}", file=sys.stderr)
        self.tracker = None

    def _describe(self) -> None:
        children = self.tracker.child_runs()
        superseded = superseded_attempts(children)
        for child in children:
            if child["run_id"] in superseded:
                self.tracker.end_superseded(child["run_id"], superseded[child["run_id"]])
                child["status"] = "KILLED"
        jobs = sweep_jobs.read(self.sweep_dir)
        best = best_child(children)
        self.tracker.log_metrics({"sweep/children": len(children)})
        if jobs:
            failed = sum(job["status"] != "FINISHED" for job in jobs)
            self.tracker.log_metrics({"sweep/jobs": len(jobs), "sweep/jobs_failed": failed})
            self.tracker.log_artifact(self.sweep_dir / sweep_jobs.JOBS_FILE)
        if best is not None:
            metrics = best["metrics"]
            self.tracker.set_tags(
                {
                    "best.run_id": best["run_id"],
                    "best.run_name": best["run_name"],
                    **{f"best.{key}": best["params"].get(key) for key in SWEPT_PARAMS},
                }
            )
            self.tracker.log_metrics(
                {
                    f"best/{split}_{name}": metrics[key]
                    for split in ("val", "test")
                    for name in ("f1", "precision", "recall", "pr_auc")
                    for key in (f"{split}/{name}", f"{split}/{name}_macro")
                    if key in metrics
                }
            )
        self.tracker.set_description(sweep_description(self.compared, children, best, jobs))


SWEPT_PARAMS = (
    "data.name",
    "train.batch_size",
    "model.penalty",
    "model.alpha",
    "rebalance.strategy",
)


def best_child(children: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The FINISHED child ranked first (:mod:`logreg.ranking`), if one has a validation F1.

    Binary runs log ``val/f1`` and ``val/pr_auc``, multiclass runs ``val/f1_macro`` and
    ``val/pr_auc_macro``. The same order as ``python -m logreg.sweep``'s table.
    """
    finished = [child for child in children if child["status"] == "FINISHED"]
    best = ranking.best([child["metrics"] for child in finished])
    return None if best is None else finished[best]


def superseded_attempts(children: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Children left by an attempt that a retry replaced: run id -> the replacing run's id.

    A job whose worker died after train ended its run FINISHED, before evaluate resumed
    it, leaves a FINISHED child without a validation score; the retry's child has the
    same params (the job's whole config) and the score. Such an attempt is no result to
    compare or rank, while a FINISHED child without a twin is left as it is.
    """
    scored = {}
    for child in children:
        if child["status"] == "FINISHED" and _validation_f1(child) is not None:
            scored.setdefault(_config_key(child), child["run_id"])
    return {
        child["run_id"]: scored[_config_key(child)]
        for child in children
        if child["status"] == "FINISHED"
        and _validation_f1(child) is None
        and _config_key(child) in scored
    }


def _validation_f1(child: Mapping[str, Any]) -> float | None:
    return ranking.score(child["metrics"], f"{ranking.SPLIT}/f1")


def _config_key(child: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(child["params"].items()))


def sweep_description(
    compared: Mapping[str, str],
    children: Sequence[Mapping[str, Any]],
    best: Mapping[str, Any] | None,
    jobs: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The parent run's description (markdown): what was compared, the jobs, the best child.

    ``jobs`` is the launcher's record (:mod:`logreg.sweep_jobs`) when it keeps one: it
    counts the jobs that failed before opening a child run, and says why each failed.
    Without it, the jobs are counted by their child runs' status.
    """
    swept = "; ".join(f"`{key}`: {values}" for key, values in compared.items())
    ended = collections.Counter(str(run["status"]).lower() for run in (jobs if jobs else children))
    counts = {"finished": ended.pop("finished", 0), "failed": ended.pop("failed", 0), **ended}
    lines = [
        f"Sweep over {swept or 'one config (no swept keys)'}",
        "",
        "- jobs: " + ", ".join(f"{n} {status}" for status, n in counts.items()),
    ]
    for job in jobs:
        if job["status"] != "FINISHED":
            overrides = " ".join(o for o in job["overrides"] if "parent_run_id" not in o)
            lines.append(f"  - job {job['job']} failed (`{overrides}`): {job['error']}")
    if best is None:
        lines.append("- best: none (no finished job has a validation F1)")
    else:
        f1 = ranking.score(best["metrics"], f"{ranking.SPLIT}/f1")
        lines.append(f"- best: {best['run_name']} (`{best['run_id']}`), val F1 {f1:.4f}")
    return "\n".join(lines)


def _swept(overrides: Sequence[str]) -> dict[str, str]:
    """The overrides that sweep (``train.batch_size=16,256``): key -> values as written."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return dict(_split_override(o.input_line) for o in parsed if o.is_sweep_override())


def _search_space(sweeper: DictConfig) -> dict[str, str]:
    """A search sweeper's space (Optuna's ``params``); a grid has none."""
    space = sweeper.get("params") or {}
    return {key: str(value) for key, value in space.items()}


def _split_override(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~").replace("/", "."), value


@cli
def main() -> None:
    """``python -m logreg.run [--multirun] [overrides]``: Hydra reads ``sys.argv``."""
    import hydra

    config_dir = conf_dir()
    check_command_line(sys.argv[1:], config_dir)  # every job's config, before any job runs
    app = hydra.main(config_path=str(config_dir), config_name="config", version_base=None)
    app(task)()


if __name__ == "__main__":
    # Run the importable module's main, not this __main__ copy: the joblib launcher's
    # workers then unpickle the task as logreg.run.task, by name.
    from logreg import run

    run.main()
