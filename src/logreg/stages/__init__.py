"""Pipeline stages: one module per DVC stage, each a thin ``main()`` around pure functions."""
