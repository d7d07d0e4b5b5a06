"""Layer 1: classical reference solvers built on :mod:`pdekit.linalg`.

Finite-difference Poisson and Darcy problems, Gaussian random fields, time-dependent solvers
that make training data, optimal transport (:mod:`pdekit.classical.ot`), and online tuning of
the SOR relaxation factor. Nothing here knows about files, models or the command line.
"""
