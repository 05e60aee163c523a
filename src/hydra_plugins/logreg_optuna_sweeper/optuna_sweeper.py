"""The sweeper's config (``hydra.sweeper.*``) and the :class:`OptunaSweeper` Hydra calls.

Registered at import, as Hydra's plugin discovery expects (see the Dask launcher).
"""

# No `from __future__ import annotations`: Hydra executes this module without entering it
# in sys.modules, and dataclasses then cannot resolve string annotations.
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.logreg_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    # any Optuna sampler, e.g. {_target_: optuna.samplers.RandomSampler, seed: 0}
    sampler: Any = field(
        default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": None}
    )
    direction: str = "maximize"  # the task returns the validation F1
    study_name: str = "logreg"
    # null: in memory (the study ends with the process); a database URL keeps it, so a
    # stopped sweep resumes: sqlite:///optuna.db, postgresql+psycopg2://…
    storage: Optional[str] = None  # noqa: UP045 (OmegaConf reads Optional, not X | None)
    n_trials: int = 20  # trials in the study, counting those of earlier runs of the sweep
    n_jobs: int = 1  # trials proposed at once: a batch the launcher runs in parallel
    params: dict[str, str] = field(default_factory=dict)  # key: choice(…) | interval(…)


ConfigStore.instance().store(
    group="hydra/sweeper", name="logreg_optuna", node=OptunaSweeperConf, provider="logreg"
)


class OptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.config: DictConfig | None = None
        self.launcher: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        from hydra_plugins.logreg_optuna_sweeper import _core

        _core.search(self, arguments)
