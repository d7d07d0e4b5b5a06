"""The method-specific training tasks (:class:`pdekit.train.task.Task` subclasses).

Importing this package registers them; each module holds one method's task.
"""

from pdekit.train.tasks import refiner  # noqa: F401  (PDE-Refiner and its one-step baseline)
