"""The method-specific training tasks (:class:`pdekit.train.task.Task` subclasses).

Importing this package registers them; each module holds one method's task.
"""

from pdekit.train.tasks import (  # noqa: F401  (imported to register the tasks)
    dcdm,  # the deep conjugate direction method
    mesh_movers,  # the data-free mesh mover, MM-PDE and its uniform-mesh GNN baseline
    refiner,  # PDE-Refiner and its one-step baseline
)
from pdekit.train.tasks import hard_constraints  # noqa: F401  (physics-informed hard / soft constraints)
