"""The method-specific training tasks (:class:`pdekit.train.task.Task` subclasses).

Importing this package registers them; each module holds one method's task.
"""

from pdekit.train.tasks import (  # noqa: F401  (imported to register the tasks)
    dcdm,  # the deep conjugate direction method
    frame_rollout,  # autoregressive frame windows (the FNO / LSM Navier-Stokes protocol)
    hard_constraints,  # physics-informed hard / soft constraints
    mesh_movers,  # the data-free mesh mover, MM-PDE and its uniform-mesh GNN baseline
    refiner,  # PDE-Refiner and its one-step baseline
)
