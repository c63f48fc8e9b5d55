"""Run directories -> the paper's tables and figures (see analysis/README.md).

Modules: ``logs`` (scalars.json across resumes), ``collect`` (one grid's runs and states), ``paper``
(the paper's numbers as data), ``layouts`` (paper table layouts per grid), ``tables`` (CLI: Markdown,
LaTeX, CSV, README markers), ``model_summary`` (#Param), ``fourier`` (Park & Kim's Fourier analysis),
``features`` (backbones from checkpoints, feature pictures), ``figures`` (CLI: PNG/PDF), ``explore``
(notebook helpers). Importing the package imports none of them.
"""
