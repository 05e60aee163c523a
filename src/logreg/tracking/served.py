"""The served model: a pyfunc whose ``loader_module`` is this module, nothing pickled.

Its weights load from the npz/json pair written by :meth:`logreg.LogisticRegression.save`.
When the model's metadata holds the prepare stage's preprocessing, as the pipeline's
models do, the served model takes rows of the original columns and applies that
preprocessing itself. Serve it offline with
``mlflow models serve -m runs:/<run id>/model --env-manager local``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from logreg import preprocess
from logreg.errors import UserError
from logreg.preprocess import Preprocessing
from logreg.tracking.store import import_mlflow, no_integer_schema_hint

MODEL_NAME = "model"  # the pyfunc model's name inside the run
MODEL_FILE = "model.npz"
SERVING_FILE = "serving.json"  # positive class and decision threshold of the served model


class ServedModel:
    """What ``mlflow.pyfunc.load_model`` returns for a logged logreg model."""

    def __init__(
        self,
        model: Any,
        positive: Any = None,
        threshold: float = 0.5,
        preprocessing: Preprocessing | None = None,
    ) -> None:
        self.model = model
        self.positive = positive
        self.threshold = threshold
        self.preprocessing = preprocessing
        names = model.feature_names_in_
        self.feature_names = list(names) if names else None

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        if self.preprocessing is not None:
            frame = self._features_of(frame)
        if self.feature_names is not None:
            missing = [c for c in self.feature_names if c not in frame.columns]
            if missing:
                raise ValueError(f"input is missing feature columns: {missing[:5]}")
            frame = frame[self.feature_names]
        proba = self.model.predict_proba(frame.to_numpy(dtype=np.float64))
        classes = self.model.classes_
        out = pd.DataFrame(proba, columns=[f"proba_{c}" for c in classes], index=frame.index)
        if len(classes) == 2 and self.positive is not None:
            pos = int(np.flatnonzero(classes == self.positive)[0])
            labels = np.where(proba[:, pos] >= self.threshold, classes[pos], classes[1 - pos])
        else:
            labels = classes[np.argmax(proba, axis=1)]
        out.insert(0, "label", labels)
        return out

    def _features_of(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The training transform applied to rows of the original columns."""
        prep = self.preprocessing
        try:
            features = preprocess.transform(prep, rows)
        except UserError as exc:  # one message, as a scoring error
            raise ValueError(f"input: {exc}") from None
        if len(features) < len(rows):  # prepare.missing=drop removes rows with gaps
            gaps = rows[[c.name for c in prep.columns]].isna().any(axis=1).to_numpy()
            raise ValueError(
                f"input {preprocess.row_name(rows.index, int(np.argmax(gaps)))} has a missing "
                "value; the model was prepared with missing=drop, so it scores complete rows only"
            )
        return features


def _load_pyfunc(data_path: str, model_config: Any = None) -> ServedModel:
    """MLflow's ``loader_module`` hook: rebuild the model from npz/json, no pickle."""
    from logreg import LogisticRegression

    folder = Path(data_path)
    model = LogisticRegression.load(folder / MODEL_FILE)
    prep = model.metadata_.get("preprocess")
    preprocessing = Preprocessing.from_dict(prep) if prep else None
    serving_file = folder / SERVING_FILE
    serving = json.loads(serving_file.read_text()) if serving_file.is_file() else {}
    positive = serving.get("positive_class")
    if positive is not None:
        positive = np.asarray([positive]).astype(model.classes_.dtype)[0]
    return ServedModel(model, positive, float(serving.get("threshold", 0.5)), preprocessing)


def log_model(
    model_path: str | os.PathLike[str],
    *,
    input_example: pd.DataFrame,
    positive: Any = None,
    threshold: float = 0.5,
) -> None:
    """Log the saved model as a pyfunc into the active run; no pickle, only npz/json.

    The served model takes rows by column name: the original columns when the
    model's metadata holds its preprocessing (``input_example`` should then be such
    rows), else the prepared features. It returns ``proba_<class>`` columns equal
    to ``predict_proba`` and a ``label`` column (binary: ``P(positive) >= threshold``).
    """
    import_mlflow()
    from mlflow.models import infer_signature
    from mlflow.pyfunc import log_model as log_pyfunc

    model_path = Path(model_path)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "logreg"
        data.mkdir()
        shutil.copy2(model_path, data / MODEL_FILE)
        shutil.copy2(model_path.with_suffix(".json"), data / Path(MODEL_FILE).with_suffix(".json"))
        serving = {"positive_class": _plain(positive), "threshold": float(threshold)}
        (data / SERVING_FILE).write_text(json.dumps(serving, indent=2) + "\n")
        served = _load_pyfunc(str(data))
        output = served.predict(input_example)
        with no_integer_schema_hint():
            log_pyfunc(
                name=MODEL_NAME,
                loader_module=__name__,
                data_path=str(data),
                signature=infer_signature(input_example, output),
                input_example=input_example,
                pip_requirements=_requirements(),
            )


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("mlflow", "numpy", "pandas"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
