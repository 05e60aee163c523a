"""Saving and loading a fitted LogisticRegression: weights in .npz, the rest in .json.

Neither format runs code when read. Both are written to temp files and renamed.
The files hold no clock time: the same fit saves the same bytes, so DVC hashes a
retrained model as unchanged. The history's ``elapsed`` seconds stay on the fitted
estimator (and in MLflow), not in the saved model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from logreg.io import atomic_path, write_json

FORMAT = "logreg.LogisticRegression/1"
CLOCK_FIELDS = ("elapsed",)  # history fields that differ between two runs of one fit


def save(model: Any, path: str | Path, metadata: dict[str, Any] | None = None) -> None:
    """Write ``path`` (.npz: weights) and ``path.with_suffix('.json')`` (everything else)."""
    npz_path = Path(path)
    arrays = {"coef": model.coef_, "intercept": model.intercept_}
    if model._hessian is not None:
        arrays["hessian"] = model._hessian
    with atomic_path(npz_path) as tmp, tmp.open("wb") as handle:
        np.savez(handle, **arrays)
    write_json(
        npz_path.with_suffix(".json"),
        {
            "format": FORMAT,
            "params": model.get_params(),
            "classes": model.classes_.tolist(),
            "classes_dtype": model.classes_.dtype.str,
            "n_features_in": model.n_features_in_,
            "feature_names_in": model.feature_names_in_,
            "n_samples_fit": model.n_samples_fit_,
            "n_iter": model.n_iter_,
            "stop_reason": model.stop_reason_,
            "history": [
                {key: value for key, value in record.items() if key not in CLOCK_FIELDS}
                for record in model.history_
            ],
            "metadata": metadata or {},
        },
    )


def load(cls: type, path: str | Path) -> Any:
    """A ``cls`` instance as :func:`save` wrote it (its history without clock times)."""
    npz_path = Path(path)
    info = json.loads(npz_path.with_suffix(".json").read_text())
    params = info["params"]
    classes = np.asarray(info["classes"], dtype=np.dtype(info["classes_dtype"]))
    if isinstance(params.get("class_weight"), dict):
        # JSON object keys are strings; map them back onto the fitted class labels.
        by_text = {str(c): c for c in classes.tolist()}
        params["class_weight"] = {by_text.get(k, k): v for k, v in params["class_weight"].items()}
    model = cls(**params)
    with np.load(npz_path, allow_pickle=False) as arrays:
        model.coef_ = arrays["coef"]
        model.intercept_ = arrays["intercept"]
        model._hessian = arrays["hessian"] if "hessian" in arrays else None
    model.classes_ = classes
    model.n_features_in_ = info["n_features_in"]
    model.feature_names_in_ = info["feature_names_in"]
    model.n_samples_fit_ = info["n_samples_fit"]
    model.n_iter_ = info["n_iter"]
    model.stop_reason_ = info["stop_reason"]
    model.history_ = info["history"]
    model.metadata_ = info["metadata"]
    return model
