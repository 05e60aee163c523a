"""The launcher's config (``hydra.launcher.*``) and the :class:`DaskLauncher` Hydra calls.

Hydra imports every module under ``hydra_plugins`` to discover plugins, so registering the
config group here, at import, is the plugin convention (as Hydra's own launchers do).
"""

# No `from __future__ import annotations`: Hydra executes this module without entering it
# in sys.modules, and dataclasses then cannot resolve string annotations.
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class DaskLauncherConf:
    _target_: str = "hydra_plugins.logreg_dask_launcher.dask_launcher.DaskLauncher"
    # null: a LocalCluster for this sweep, closed after it; "tcp://host:8786": a running
    # scheduler (`dask scheduler`, and `dask worker tcp://host:8786 --nthreads 1` per job slot)
    address: Optional[str] = None  # noqa: UP045 (OmegaConf reads Optional, not X | None)
    n_workers: int = 2  # LocalCluster only: worker processes, one job at a time each
    memory_limit: str = "auto"  # LocalCluster only: per worker, e.g. "4GiB"
    retries: int = 1  # a job that raises, or whose worker dies, runs again this many times


ConfigStore.instance().store(
    group="hydra/launcher", name="dask", node=DaskLauncherConf, provider="logreg"
)


class DaskLauncher(Launcher):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None
        self.client: Any = None  # made by the first launch, kept for a sweep's later batches

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.task_function = task_function
        self.hydra_context = hydra_context

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from hydra_plugins.logreg_dask_launcher import _core

        return _core.launch(self, job_overrides, initial_job_idx)
