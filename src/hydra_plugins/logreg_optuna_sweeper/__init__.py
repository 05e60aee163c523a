"""``hydra/sweeper=logreg_optuna``: an Optuna (>= 4) search that can stop and resume.

Hydra's own Optuna sweeper pins Optuna 2, whose database storage fails with SQLAlchemy 2,
so a study could be neither shared nor resumed. This one asks Optuna for trials, runs
each batch through whichever launcher the sweep uses (joblib, dask), and tells Optuna
the results. The sweeper is :mod:`.optuna_sweeper`; the search itself :mod:`._core`.
"""
