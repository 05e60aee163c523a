"""How far the tuned threshold moves under small changes: the plain val maximum against the
bootstrap median (``evaluate.threshold_method``), on a finished pipeline folder.

Run from the project root after ``dvc repro`` (or on a ``python -m logreg.run`` job folder):

    python bench/threshold_stability.py                    # this checkout's pipeline outputs
    python bench/threshold_stability.py --folder outputs/<date>/<time> --seeds 10 --drops 10

It reloads the trained model's hyperparameters and refits it on the same rebalanced
training split under small changes: another ``seed`` (SGD's shuffling; a no-op for
Newton) and, one at a time, the removal of a feature column (the ``--drops`` columns with
the smallest |coefficient|, the smallest of feature changes). For each fit it tunes the
threshold by every method (on the validation split, or for ``cv`` on out-of-fold
scores of train + val) (``evaluate.n_bootstrap`` and
``evaluate.seed`` from the folder's params) and scores it on the test split. It prints
one row per fit and, per method, the spread of the thresholds across fits and the mean
test F1, beside the test F1 at 0.5. The test split only scores: nothing is tuned on it.

Then, for the model as trained, "another validation sample": ``--outer`` stratified
bootstrap resamples of the validation split stand in for other draws of it, and each
method tunes on each of them. The spread of those thresholds is the method's own
sensitivity to which rows ended up in validation, with the model held fixed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from logreg import LogisticRegression, pipeline
from logreg.bootstrap import resample_indices
from logreg.config import load_params
from logreg.crossval import out_of_fold_scores
from logreg.frames import Split, read_split
from logreg.metrics import OUT_OF_FOLD, THRESHOLD_METHODS, positive_scores, thresholded_metrics
from logreg.schema import check_section
from logreg.stages.train import MODEL_FILE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=".", help="a finished pipeline folder")
    parser.add_argument("--seeds", type=int, default=5, help="refits with seeds 1..N")
    parser.add_argument("--drops", type=int, default=5, help="refits without one column each")
    parser.add_argument("--outer", type=int, default=50, help="other validation samples")
    args = parser.parse_args()
    folder = Path(args.folder)
    paths = pipeline.layout(folder)
    params = load_params(folder / pipeline.PARAMS_FILE)
    options = check_section("evaluate", params.get("evaluate", {}))
    rebalancing = check_section("rebalance", params["rebalance"])
    base = LogisticRegression.load(paths["evaluate"].model_dir / MODEL_FILE)
    positive = base.metadata_["positive_class"]
    rebalanced = read_split(paths["train"].train)  # what train fitted on
    train = read_split(paths["evaluate"].train)  # prepared: cv's refits rebalance it
    val = read_split(paths["evaluate"].val)
    test = read_split(paths["evaluate"].test)
    names = list(train.feature_names)
    weakest = np.argsort(np.abs(base.coef_[0]))[: args.drops]

    changes: list[tuple[str, dict, list[int]]] = [("as trained", {}, list(range(len(names))))]
    changes += [
        (f"seed {s}", {"seed": s}, list(range(len(names)))) for s in range(1, args.seeds + 1)
    ]
    changes += [
        (f"without {names[j]}", {}, [k for k in range(len(names)) if k != j]) for j in weakest
    ]
    rows = []
    started = time.perf_counter()
    for label, extra, keep in changes:
        model = LogisticRegression(**(base.get_params() | extra))
        model.fit(
            rebalanced.X[:, keep],
            rebalanced.y,
            sample_weight=rebalanced.sample_weight,
            X_val=val.X[:, keep],
            y_val=val.y,
        )
        s_val = positive_scores(model.predict_proba(val.X[:, keep]), model.classes_, positive)
        s_test = positive_scores(model.predict_proba(test.X[:, keep]), model.classes_, positive)
        row = {"change": label, "f1@0.5": _f1(test.y == positive, s_test >= 0.5)}
        oof = out_of_fold_scores(
            model, [_columns(train, keep), _columns(val, keep)], positive, rebalancing, seed=0
        )
        for method, tune in THRESHOLD_METHODS.items():
            y_tune, s_tune = oof if method in OUT_OF_FOLD else (val.y == positive, s_val)
            t, spread = tune(y_tune, s_tune, options["n_bootstrap"], options["seed"])
            row[f"{method} t"] = t
            row[f"{method} f1"] = _f1(test.y == positive, s_test >= t)
        row["val optima 2.5-97.5 %"] = f"{spread['low']:.3f}-{spread['high']:.3f}"
        rows.append(row)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print()
    print(f"{len(table)} fits in {time.perf_counter() - started:.0f} s ({folder})")
    print(f"test F1 at 0.5: mean {table['f1@0.5'].mean():.3f}")
    for method in THRESHOLD_METHODS:
        t = table[f"{method} t"]
        print(
            f"{method}: threshold sd {t.std():.3f}, range {t.min():.3f}-{t.max():.3f}, "
            f"mean |change| from 'as trained' {np.mean(np.abs(t[1:] - t[0])):.3f}; "
            f"test F1 mean {table[f'{method} f1'].mean():.3f}"
        )
    s_val = positive_scores(base.predict_proba(val.X), base.classes_, positive)
    other = other_validation_samples(val.y == positive, s_val, args.outer, options)
    print(f"\nthe model as trained, {args.outer} other validation samples (bootstrap):")
    for method in other:
        q1, q3 = np.percentile(other[method], [25, 75])
        print(
            f"{method}: threshold sd {other[method].std():.3f}, "
            f"interquartile range {q1:.3f}-{q3:.3f}"
        )


def other_validation_samples(
    y: np.ndarray, scores: np.ndarray, n_outer: int, options: dict, seed: int = 12345
) -> pd.DataFrame:
    """Each method's threshold on ``n_outer`` resamples of the validation split."""
    rows = []
    for indices in resample_indices(y, n_outer, seed):
        for idx in indices:
            rows.append(
                {
                    method: tune(y[idx], scores[idx], options["n_bootstrap"], options["seed"])[0]
                    for method, tune in THRESHOLD_METHODS.items()
                    if method not in OUT_OF_FOLD
                }
            )
    return pd.DataFrame(rows)


def _columns(split: Split, keep: list[int]) -> Split:
    return Split(
        split.X[:, keep], split.y, split.sample_weight, [split.feature_names[k] for k in keep]
    )


def _f1(y: np.ndarray, flagged: np.ndarray) -> float:
    return thresholded_metrics(y, flagged)["f1"]


if __name__ == "__main__":
    main()
