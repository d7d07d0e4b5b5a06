"""pdekit: scientific machine learning on PDEs.

Classical reference solvers and shared sparse linear algebra (:mod:`pdekit.linalg`),
learned solvers trained and evaluated against them.
"""

from pdekit._version import __version__

__all__ = ["__version__", "load", "load_preconditioner"]


def load(path, *, expected: str | None = None, device: str = "cpu"):
    """Rebuild the model of any pdekit checkpoint (shipped or trained), in eval mode.

    ``expected``: the registry name the checkpoint must hold (e.g. ``"deeponet"``).
    See :func:`pdekit.models.load_model`.
    """
    from pdekit.models import load_model

    return load_model(path, expected=expected, device=device)


def load_preconditioner(path, *, device: str = "cpu", scales=(1,)):
    """The learned preconditioner of a DCDM checkpoint, for ``pdekit.linalg.cg(A, b, M=M)`` or
    ``pdekit.linalg.dcdm(A, b, M)`` on any grid size and obstacle layout (it binds to each
    ``A``). ``scales=(1, 2, 4)`` cycles the network over the grid and 2x and 4x coarser ones
    (for grids well beyond the training size). See
    :class:`pdekit.models.dcdm.LearnedPreconditioner`."""
    from pdekit.models import LearnedPreconditioner, load_model

    return LearnedPreconditioner(load_model(path, expected="dcdm-net", device=device), scales=scales)
