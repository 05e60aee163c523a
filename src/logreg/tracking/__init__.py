"""MLflow tracking, one module per concern; only ``store``, ``runs`` and ``served`` use mlflow.

- :mod:`~logreg.tracking.provenance`: project root, git commit, file hashes (no mlflow);
- :mod:`~logreg.tracking.store`: which store, whether it answers, the experiment and its
  creation lock, retries of transient errors, and the one lazy ``import mlflow``;
- :mod:`~logreg.tracking.runs`: the trackers (:func:`~logreg.tracking.runs.open_tracker`),
  what a run logs, and how evaluate finds train's run (the model digest tag, the
  untracked run file);
- :mod:`~logreg.tracking.orphans`: owner tags, and ending runs whose process died;
- :mod:`~logreg.tracking.served`: the logged pyfunc model and its loader.

Import from the module that owns a name. Nothing happens at import: mlflow is imported
on first use, after telemetry has been switched off.
"""

# Models logged before tracking became a package name ``loader_module: logreg.tracking``
# in their MLmodel file, and MLflow loads them by calling this module's _load_pyfunc.
# New models name logreg.tracking.served; keep this line while such old models may be loaded.
from logreg.tracking.served import _load_pyfunc as _load_pyfunc
