"""Engines: where the rows live when they are not one in-memory array.

Each engine is a :class:`logreg.model.rows.RowBlocks`, so the solvers run on it as they
are; an engine adds no solver of its own. :mod:`.dask_rows` keeps blocks on the workers
of a Dask cluster; :mod:`.memmap_rows` reads a row-major cache on disk, block by block.
:mod:`.score_counts` gives evaluate's curves and thresholds from per-partition counts.
"""
