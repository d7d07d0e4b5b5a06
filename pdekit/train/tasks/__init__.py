"""The method-specific training tasks (:class:`pdekit.train.task.Task` subclasses).

Importing this package registers them; each module holds one method's task.
"""
