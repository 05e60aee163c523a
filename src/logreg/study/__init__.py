"""The lesson's four questions, answered with this project's own runs.

    make study    # python -m logreg.study, after `make run`; `make sweep` adds the strategies

- :mod:`~logreg.study.analysis`: every number (the fits, statistics, the figure's data);
- :mod:`~logreg.study.document`: the markdown prose that reads those numbers;
- :mod:`~logreg.study.figures`: the batch-size figure;
- :mod:`~logreg.study.__main__`: reads the pipeline's outputs and writes the document.
"""
