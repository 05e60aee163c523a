"""``hydra/launcher=dask``: a multirun's jobs on a Dask cluster (logreg's own Hydra plugin).

Hydra finds launchers in the ``hydra_plugins`` namespace package; the launcher itself is
:mod:`.dask_launcher`, the jobs' side is :mod:`._core`.
"""
