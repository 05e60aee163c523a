"""LogisticRegression: the estimator API around the solvers, in scikit-learn's shape."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from logreg.model import inference, persistence
from logreg.model.equations import balanced_class_weights, objective_value, softmax
from logreg.model.newton import newton_solve
from logreg.model.parameters import PARAMETERS, check_parameters, effective_penalty
from logreg.model.prox_newton import prox_newton_solve
from logreg.model.rows import Block, InMemoryRows, RowBlocks
from logreg.model.sgd import FitRecord, sgd_solve
from logreg.model.sgd_kernels import NonFiniteRows


def distinct_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(labels, return_inverse=True)``: the sorted classes, each label's index.

    Integer and boolean labels spanning no more values than there are labels are counted
    with one O(n) ``np.bincount`` instead of np.unique's sort or hash, which costs a
    fifth of an SGD epoch at 200,000 rows; any other labels go through np.unique.
    """
    if labels.dtype.kind in "biu" and labels.size:
        low, high = int(labels.min()), int(labels.max())
        if high - low < max(labels.size, 256) and -(2**62) < low and high < 2**62:
            offset = labels.astype(np.intp) - low
            present = np.bincount(offset, minlength=high - low + 1) > 0
            classes = (np.flatnonzero(present) + low).astype(labels.dtype)
            return classes, (np.cumsum(present) - 1)[offset]
    return np.unique(labels, return_inverse=True)


class LogisticRegression:
    """Binary (sigmoid) or multinomial (softmax) logistic regression.

    Parameters
    ----------
    penalty : {"l2", "l1", "elasticnet", "none"}
    alpha : float, default 1e-4
        Penalty strength α ≥ 0; the optimum matches scikit-learn's C = 1/(α·n_samples).
    l1_ratio : float in [0, 1], default 0.5
        Elastic-net mix ρ (used only by ``penalty="elasticnet"``).
    solver : {"sgd", "newton", "proximal"}
        Minibatch SGD (any penalty), full-batch Newton (l2/none, with ``summary()``), or
        full-batch proximal Newton (any penalty; exact zeros under L1, few passes over the
        rows, which suits partitions on a cluster).
    batch_size : int or "full", default 256
        Rows per SGD step; ``"full"`` or any value ≥ n_samples is full-batch descent.
    learning_rate : "auto" or float, default "auto"
        Initial step size: one step moves by lr times the mean gradient of a batch.
        "auto" takes it from the data, 1/(2𝓛(B)) with 𝓛(B) a bound on the curvature of
        a batch's loss (see :mod:`logreg.model.equations`), so features of any scale
        train without tuning; ``learning_rate_`` is the step it chose. A number overrides
        it (0.5 suits standardised features) and stops with ``DivergenceError`` if too big.
    lr_schedule : {"step", "invscaling", "constant", "adaptive"}, default "step"
        Halved after every 50,000 samples seen (at most once per epoch, never for
        full-batch descent, which has no gradient noise), lr/√(1+epoch/20), fixed, or
        divided by 5 after 5 epochs without a better training loss. A decaying step
        lets SGD converge instead of wandering around the optimum at a noise floor set
        by the step size.
    momentum : float in [0, 1), default 0
        Heavy-ball momentum.
    epochs : int, default 1000
        Maximum passes over the data (SGD) or Newton iterations.
    epoch_loss : {"full", "progressive"}, default "full"
        The SGD training loss recorded after each epoch, which ``tol`` also watches: J
        at the epoch's final weights, from one extra pass over the data, or the
        progressive loss, each row's loss at the weights its batch was visited with
        (no extra pass; it lags J while J falls). Newton always records J.
    tol : float, default 1e-7
        Stop when the epoch loss changes by less than tol, relative (SGD), or when
        Newton's predicted gain falls below tol²·J.
    patience : int or None, default 10
        With validation data, stop after this many epochs without a better validation
        loss and restore the best weights. None disables early stopping.
    max_time : float or None
        Seconds of training after which to stop.
    class_weight : None, "balanced" or dict
        Multiplies sample weights per class; "balanced" is n/(K·count(class)).
    fit_intercept : bool, default True
    dtype : {"float64", "float32"}
        Precision of the SGD path. Newton always works in float64.
    seed : int, default 0
        Seeds SGD's shuffle and the rows of Newton's sampled Hessian; the same seed and
        data give identical weights.
    """

    def __init__(
        self,
        penalty: str = "l2",
        alpha: float = 1e-4,
        l1_ratio: float = 0.5,
        solver: str = "sgd",
        batch_size: int | str = 256,
        learning_rate: float | str = "auto",
        lr_schedule: str = "step",
        momentum: float = 0.0,
        epochs: int = 1000,
        epoch_loss: str = "full",
        tol: float = 1e-7,
        patience: int | None = 10,
        max_time: float | None = None,
        class_weight: str | dict[Any, float] | None = None,
        fit_intercept: bool = True,
        dtype: str = "float64",
        seed: int = 0,
    ) -> None:
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.solver = solver
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.epochs = epochs
        self.epoch_loss = epoch_loss
        self.tol = tol
        self.patience = patience
        self.max_time = max_time
        self.class_weight = class_weight
        self.fit_intercept = fit_intercept
        self.dtype = dtype
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in PARAMETERS}

    # -- data preparation -----------------------------------------------------

    def _check_X(self, X: Any, *, fitting: bool, finite: bool = True) -> np.ndarray:
        """X as a float64 or float32 array, in the order it came (C or Fortran).

        ``finite=False`` leaves the check for NaN and inf to the caller: SGD's shuffled
        copy makes it on the way, in cache, instead of another pass over X.
        """
        names = [str(c) for c in X.columns] if hasattr(X, "columns") else None
        array = np.asarray(X)
        if array.dtype != np.float32:  # float32 stays float32: a float32 fit needs no float64 copy
            array = np.asarray(array, dtype=np.float64)
        if array.ndim != 2:
            raise ValueError(
                f"X must be 2-dimensional (n_samples, n_features); got shape {array.shape}"
            )
        if finite:
            self._check_finite(array, names)
        if fitting:
            self.n_features_in_ = array.shape[1]
            self.feature_names_in_ = names
        elif array.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {array.shape[1]} features, but the model was fitted with "
                f"{self.n_features_in_}"
            )
        return array

    @staticmethod
    def _check_finite(array: np.ndarray, names: list[str] | None) -> None:
        if not np.isfinite(array).all():
            rows, cols = np.nonzero(~np.isfinite(array))
            raise ValueError(
                f"X contains NaN or inf ({rows.size} values; first at row {rows[0]}, column "
                f"{names[cols[0]] if names else cols[0]})"
            )

    def _class_index(self, y: Any) -> np.ndarray:
        return label_index(self.classes_, y)

    def _encode_targets(self, index: np.ndarray) -> np.ndarray:
        return one_hot(len(self.classes_), index)

    def _sample_weights(self, index: np.ndarray, sample_weight: Any) -> np.ndarray:
        """s: the sample weights times the class weights, from each row's class index."""
        n = len(index)
        s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if s.shape != (n,):
            raise ValueError(f"sample_weight has shape {s.shape}; expected ({n},)")
        if not np.isfinite(s).all() or (s < 0).any():
            raise ValueError("sample_weight must be finite and non-negative")
        if self.class_weight is None:
            return s
        if self.class_weight == "balanced":
            per_class = balanced_class_weights(np.bincount(index, minlength=len(self.classes_)))
        else:
            unknown = set(self.class_weight) - set(self.classes_.tolist())
            if unknown:
                raise ValueError(f"class_weight names classes not in y: {sorted(unknown, key=str)}")
            per_class = np.array([float(self.class_weight.get(c, 1.0)) for c in self.classes_])
        return s * per_class[index]

    # -- fitting --------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        X_val: Any = None,
        y_val: Any = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
    ) -> LogisticRegression:
        """Fit on (X, y); X_val/y_val enable early stopping and the val_loss history.

        ``callback``, if given, is called with each epoch's history record as it ends
        (a progress bar, say); it must not change the record.
        """
        check_parameters(self.get_params())
        # SGD's copy of X checks it for NaN and inf; Newton and proximal read X as it is.
        X_array = self._check_X(X, fitting=True, finite=self.solver != "sgd")
        labels = np.asarray(y)
        if labels.ndim != 1 or len(labels) != X_array.shape[0]:
            raise ValueError(
                f"X has {X_array.shape[0]} rows but y has shape {labels.shape}; "
                "they must have the same length"
            )
        self.classes_, index = distinct_labels(labels)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y has only {len(self.classes_)} class ({self.classes_.tolist()}); "
                "at least two are needed"
            )
        Y = self._encode_targets(index)
        s = self._sample_weights(index, sample_weight)
        del index  # n more integers beside the fit's copy of X otherwise
        alpha, l1_ratio = effective_penalty(self.penalty, self.alpha, self.l1_ratio)
        n = X_array.shape[0]

        if self.solver != "sgd":
            rows = InMemoryRows.of(X_array.astype(np.float64, copy=False), Y, s)
            W, b, record = self._solve(rows, None, alpha, l1_ratio, callback)
        else:
            dtype = np.dtype(self.dtype)
            # Rebound, so that a float32 fit keeps no float64 Y and s beside its copy of X.
            Y, s = Y.astype(dtype, copy=False), s.astype(dtype, copy=False)
            validation = None
            if X_val is not None and y_val is not None:
                X_val_array = self._check_X(X_val, fitting=False).astype(dtype, copy=False)
                y_val_labels = np.asarray(y_val)
                if X_val_array.shape[0] == 0 or len(y_val_labels) != X_val_array.shape[0]:
                    raise ValueError(
                        f"X_val has {X_val_array.shape[0]} rows and y_val {len(y_val_labels)}; "
                        "they need the same number, at least 1 (or pass neither)"
                    )
                validation = InMemoryRows.of(
                    X_val_array,
                    self._encode_targets(self._class_index(y_val_labels)).astype(dtype),
                    np.ones(len(y_val_labels), dtype=dtype),
                )
            try:
                W, b, record = self._fit_sgd(X_array, Y, s, validation, alpha, l1_ratio, callback)
            except NonFiniteRows:
                self._check_finite(X_array, self.feature_names_in_)
                raise
        self._set_fitted(W, b, record, n)
        if alpha == 0:
            self.separable_ = self._warn_if_separable(
                bool(np.array_equal(self.predict(X_array), labels))
            )
        return self

    def fit_rows(
        self,
        rows: RowBlocks,
        classes: Any,
        validation: RowBlocks | None = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
        feature_names: list[str] | None = None,
        visits: Callable[..., Any] | None = None,
    ) -> LogisticRegression:
        """Fit on row blocks (on disk, on a cluster): the same solvers as :meth:`fit`.

        The blocks hold X, the targets Y already encoded with ``classes`` (the sorted
        labels: a 0/1 column for two, one-hot for more) and the sample weights s, class
        weights included, in the working dtype (float64 for Newton and proximal, ``dtype``
        for SGD); ``validation`` (SGD only) is encoded alike, with weights 1. ``visits``
        replaces how SGD's epochs visit the blocks (see :func:`logreg.model.sgd.sgd_solve`).
        """
        check_parameters(self.get_params())
        if self.class_weight is not None:
            raise ValueError("fit_rows: put the class weights in the blocks' s; class_weight=None")
        self.classes_ = np.asarray(classes)
        if len(self.classes_) < 2:
            raise ValueError(f"classes: got {self.classes_.tolist()}; at least two are needed")
        alpha, l1_ratio = effective_penalty(self.penalty, self.alpha, self.l1_ratio)
        W, b, record = self._solve(rows, validation, alpha, l1_ratio, callback, visits)
        self.n_features_in_, self.feature_names_in_ = W.shape[0], feature_names
        self._set_fitted(W, b, record, rows.n_rows)
        if alpha == 0:
            misclassified = rows.sum(partial(misclassified_rows, W=W, b=b))
            self.separable_ = self._warn_if_separable(misclassified == 0)
        return self

    def _solve(
        self,
        rows: RowBlocks,
        validation: RowBlocks | None,
        alpha: float,
        l1_ratio: float,
        callback: Callable[[dict[str, Any]], None] | None,
        visits: Callable[..., Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, FitRecord]:
        """The solver on the rows: W (D, K'), b (K',) and its record."""
        if self.solver == "sgd":
            n = rows.n_rows
            return sgd_solve(
                rows,
                alpha=alpha,
                l1_ratio=l1_ratio,
                fit_intercept=self.fit_intercept,
                batch_size=n if self.batch_size == "full" else int(self.batch_size),
                learning_rate0=self.learning_rate,
                lr_schedule=self.lr_schedule,
                momentum=float(self.momentum),
                epochs=int(self.epochs),
                epoch_loss=self.epoch_loss,
                tol=float(self.tol),
                patience=self.patience if validation is not None else None,
                max_time=self.max_time,
                rng=np.random.default_rng(self.seed),
                validation=validation,
                callback=callback,
                visits=visits,
            )
        if self.solver == "newton":
            # The gain is quadratic in the gradient; proximal Newton's tol bounds the gradient.
            solver, settings = newton_solve, {"tol": max(self.tol, 1e-15) ** 2}
        else:
            solver, settings = prox_newton_solve, {"tol": self.tol, "l1_ratio": l1_ratio}
        return solver(
            rows,
            alpha=alpha,
            fit_intercept=self.fit_intercept,
            max_iter=self.epochs,
            max_time=self.max_time,
            rng=np.random.default_rng(self.seed),
            callback=callback,
            **settings,
        )

    def _set_fitted(self, W: np.ndarray, b: np.ndarray, record: FitRecord, n: int) -> None:
        self.coef_ = np.ascontiguousarray(W.T)
        self.intercept_ = np.asarray(b)
        self.learning_rate_ = record.learning_rate
        self.history_ = record.history
        self.n_iter_ = record.n_iter
        self.stop_reason_ = record.stop_reason
        self.n_samples_fit_ = n
        self._hessian = record.hessian
        self.separable_ = None

    def _fit_sgd(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        s: np.ndarray,
        validation: InMemoryRows | None,
        alpha: float,
        l1_ratio: float,
        callback: Callable[[dict[str, Any]], None] | None,
    ) -> tuple[np.ndarray, np.ndarray, FitRecord]:
        # Y and s are in the working dtype; X is copied once, shuffled, checked and in
        # that dtype, inside sgd_solve.
        rows = InMemoryRows.of(X, Y, s)
        return self._solve(rows, validation, alpha, l1_ratio, callback)

    def _warn_if_separable(self, separable: bool) -> bool:
        """Without a penalty, perfectly separated training data have no finite optimum."""
        if separable:
            warnings.warn(
                "the training data are perfectly separable: without a penalty the weights "
                f"grow until a stopping rule ends training (stop_reason_={self.stop_reason_!r}); "
                "use penalty='l2' with alpha > 0 for a finite optimum",
                stacklevel=3,
            )
        return separable

    # -- prediction -----------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise ValueError("this LogisticRegression is not fitted yet; call fit() first")

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits Z = X Wᵀ + b: shape (n,) for two classes, (n, K) for more."""
        self._check_fitted()
        X_array = self._check_X(X, fitting=False).astype(self.coef_.dtype, copy=False)
        Z = X_array @ self.coef_.T + self.intercept_
        return Z[:, 0] if Z.shape[1] == 1 else Z

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns in ``classes_`` order."""
        Z = self.decision_function(X)
        if Z.ndim == 1:
            # σ(−z) = 1 − σ(z), computed directly so tiny probabilities keep their precision.
            return np.column_stack([np.exp(-np.logaddexp(0.0, Z)), np.exp(-np.logaddexp(0.0, -Z))])
        return softmax(Z)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class for each row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def objective(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """J(W, b) on (X, y), with the fitted penalty and class weights."""
        self._check_fitted()
        X_array = self._check_X(X, fitting=False)
        labels = np.asarray(y)
        if len(labels) != X_array.shape[0]:
            raise ValueError(f"X has {X_array.shape[0]} rows but y has {len(labels)}")
        index = self._class_index(labels)
        return objective_value(
            X_array,
            self._encode_targets(index),
            self._sample_weights(index, sample_weight),
            self.coef_.T.astype(np.float64),
            self.intercept_.astype(np.float64),
            *effective_penalty(self.penalty, self.alpha, self.l1_ratio),
        )

    def summary(self, confidence: float = 0.95) -> Any:
        """Coefficient table with Wald standard errors, z, p-values and odds ratios."""
        self._check_fitted()
        return inference.wald_table(self, confidence)

    def save(self, path: str | Path, metadata: dict[str, Any] | None = None) -> None:
        """Write ``path`` (.npz: weights) and ``path.with_suffix('.json')`` (everything else)."""
        self._check_fitted()
        persistence.save(self, path, metadata)

    @classmethod
    def load(cls, path: str | Path) -> LogisticRegression:
        """Read a model written by :meth:`save`, exactly as it was but the history's ``elapsed``."""
        return persistence.load(cls, path)


def misclassified_rows(block: Block, W: np.ndarray, b: np.ndarray) -> int:
    """Rows of the block whose most probable class is not their label (Y encoded)."""
    Z = block.X @ W + b
    if block.Y.shape[1] == 1:
        predicted, actual = Z[:, 0] > 0, block.Y[:, 0] > 0.5
    else:
        predicted, actual = Z.argmax(axis=1), block.Y.argmax(axis=1)
    return int(np.count_nonzero(predicted != actual))


def label_index(classes: np.ndarray, y: Any) -> np.ndarray:
    """Each label's position in ``classes`` (sorted); a label not among them is an error."""
    labels = np.asarray(y)
    index = np.searchsorted(classes, labels)
    index = np.clip(index, 0, len(classes) - 1)
    if not np.array_equal(classes[index], labels):
        unknown = labels[classes[index] != labels][0]
        raise ValueError(f"y contains the label {unknown!r}, unseen when fitting")
    return index


def one_hot(n_classes: int, index: np.ndarray) -> np.ndarray:
    """Y from class indices: (n, 1) 0/1 for two classes, one-hot (n, K) for more."""
    if n_classes == 2:
        return index[:, None].astype(np.float64)
    return np.eye(n_classes)[index]


def encode_targets(classes: np.ndarray, y: Any) -> np.ndarray:
    """Y for the labels ``y`` (:func:`one_hot` of their :func:`label_index`)."""
    return one_hot(len(classes), label_index(classes, y))
