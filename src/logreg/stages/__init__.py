"""Pipeline stages: one module per DVC stage, a pure core, its I/O ``run`` and a thin ``main()``."""
