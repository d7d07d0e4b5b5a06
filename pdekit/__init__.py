"""pdekit: scientific machine learning on PDEs.

Classical reference solvers and shared sparse linear algebra (:mod:`pdekit.linalg`),
learned solvers trained and evaluated against them.
"""

from pdekit._version import __version__

__all__ = ["__version__"]
