"""Batches of field-to-field training pairs, in the same order on any number of processes.

Dataset items are ``{field: tensor}`` (see :func:`pdekit.data.open_dataset`); a model reads
the input fields stacked as channels, ``(B, C_in, *grid)``, and predicts the output fields
``(B, C_out, *grid)``. Each epoch's order is a permutation drawn from ``(seed, epoch)`` alone,
so a resumed run sees the same batches as an uninterrupted one, and with ``world`` data-parallel
processes each takes every ``world``-th sample of each global batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

__all__ = ["FieldBatches", "epoch_permutation", "field_statistics", "stack_fields"]


def stack_fields(item: dict[str, torch.Tensor], names: Sequence[str], batched: bool = True) -> torch.Tensor:
    """Stack the fields ``names`` of an item (or a collated batch) as channels."""
    missing = [n for n in names if n not in item]
    if missing:
        raise KeyError(f"field {missing[0]!r} is not in the dataset (fields: {sorted(item)})")
    tensors = [item[n].float() if item[n].dtype == torch.bool else item[n] for n in names]
    return torch.stack(tensors, dim=1 if batched else 0)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of ``epoch``: a permutation drawn from ``(seed, epoch)`` only."""
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(n, generator=generator)


class FieldBatches:
    """Training pairs of a dataset, preloaded into memory or read lazily.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        Items ``{field: tensor}``.
    inputs, outputs : sequence of str
        Field names stacked as the model's input and target channels.
    preload : bool
        Read the whole dataset into two tensors once (fast batches; the default when it is
        small), else read each batch through a ``DataLoader`` with ``num_workers`` workers.
    """

    def __init__(self, dataset, inputs: Sequence[str], outputs: Sequence[str], *, preload: bool = True,
                 num_workers: int = 0, dtype: torch.dtype = torch.float32):
        if len(dataset) == 0:
            raise ValueError("FieldBatches: the dataset is empty")
        self.dataset, self.inputs, self.outputs = dataset, list(inputs), list(outputs)
        self.preload, self.num_workers, self.dtype = preload, num_workers, dtype
        if preload:
            loader = torch.utils.data.DataLoader(dataset, batch_size=256, num_workers=num_workers)
            xs, ys = [], []
            for batch in loader:
                xs.append(stack_fields(batch, self.inputs).to(dtype))
                ys.append(stack_fields(batch, self.outputs).to(dtype))
            self.x, self.y = torch.cat(xs), torch.cat(ys)

    def __len__(self) -> int:
        return len(self.dataset)

    def sample_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shapes ``(C_in, *grid)`` and ``(C_out, *grid)`` of one pair."""
        item = self.dataset[0]
        return (tuple(stack_fields(item, self.inputs, batched=False).shape),
                tuple(stack_fields(item, self.outputs, batched=False).shape))

    def batches(self, batch_size: int, order: torch.Tensor | None = None, rank: int = 0,
                world: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` batches in ``order`` (default: dataset order); with ``world > 1``
        this process's share, ``rank::world``, of each global batch of ``batch_size``."""
        order = torch.arange(len(self)) if order is None else order
        # a last global batch smaller than the process count is dropped on every process alike
        chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        chunks = [c[rank::world] for c in chunks if len(c) >= world]
        if self.preload:
            for index in chunks:
                yield self.x[index], self.y[index]
            return
        loader = torch.utils.data.DataLoader(self.dataset, batch_sampler=[c.tolist() for c in chunks],
                                             num_workers=self.num_workers)
        for batch in loader:
            yield (stack_fields(batch, self.inputs).to(self.dtype),
                   stack_fields(batch, self.outputs).to(self.dtype))


def field_statistics(batches: FieldBatches, kind: str, dataset) -> dict[str, torch.Tensor] | None:
    """Normalisation statistics of the training pairs: per grid point, or per field."""
    if kind == "none":
        return None
    if not isinstance(batches, FieldBatches):
        raise ValueError(f"field_statistics: normalization {kind!r} needs field-to-field batches; set "
                         "`normalization = \"none\"` for this task")
    if batches.preload:
        moments = {"input": (batches.x.double().mean(0), batches.x.double().square().mean(0)),
                   "output": (batches.y.double().mean(0), batches.y.double().square().mean(0))}
    else:  # one streaming pass (the dataset's per-point statistics)
        stats = dataset.per_point_statistics(batches.inputs + batches.outputs)

        def stacked(names):
            mean = torch.stack([stats[n][0] for n in names])
            return mean, torch.stack([stats[n][1] for n in names]).square() + mean.square()

        moments = {"input": stacked(batches.inputs), "output": stacked(batches.outputs)}
    out = {}
    for prefix, (mean, square) in moments.items():
        if kind == "field":
            spatial = tuple(range(1, mean.ndim))
            mean, square = mean.mean(spatial, keepdim=True), square.mean(spatial, keepdim=True)
        out[f"{prefix}_mean"] = mean.float()
        out[f"{prefix}_std"] = (square - mean.square()).clamp_min(0).sqrt().float()
    return out
