"""Hard negatives: the polyp-free training frames the network is most sure hold a polyp.

A polyp-free frame the network already leaves clean teaches it little; the folds, bulges and
specular highlights it fires on are where its false alarms come from, and they are a small
share of the negatives. Before each epoch the network scores every polyp-free training frame
with the statistic the false-alarm term trains on (``training.losses.top_area_logit``), and the
highest-scoring ones are trained on a second time in that epoch: online hard example mining at
the frame level (Shrivastava et al., CVPR 2016), cheap because scoring is a forward pass only.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import ConcatDataset, Dataset, Subset, TensorDataset

from training.losses import top_area_logit
from training.transforms import normalise, to_device


class HardNegatives:
    """Picks the ``count`` hardest polyp-free frames of ``train`` and adds them to an epoch."""

    def __init__(self, train: TensorDataset, count: int, batch_size: int) -> None:
        masks = train.tensors[1]
        self.train = train
        self.candidates = torch.nonzero(masks.flatten(1).amax(1) == 0).flatten()
        self.count = min(count, len(self.candidates))
        self.batch_size = batch_size

    @torch.no_grad()
    def scores(
        self,
        network: nn.Module,
        device: torch.device,
        dtype: torch.dtype | None,
        normalisation: tuple[tuple[float, ...], tuple[float, ...]],
    ) -> torch.Tensor:
        """Each candidate's mean logit over its most confident FLAG_AREA, in candidate order.

        Needs at least one candidate: training.train refuses --hard-negatives without them."""
        was_training = network.training
        network.eval()
        images, masks = self.train.tensors
        scores = []
        try:
            for batch in self.candidates.split(self.batch_size):
                pixels, _ = to_device(images[batch], masks[batch], device)
                with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=bool(dtype)):
                    logits = network(normalise(pixels, *normalisation))
                scores.append(top_area_logit(logits).cpu())
        finally:
            network.train(was_training)
        return torch.cat(scores)

    def epoch(self, scores: torch.Tensor) -> Dataset:
        """The training set plus a second copy of the ``count`` highest-scoring candidates."""
        hardest = self.candidates[scores.topk(self.count).indices.sort().values]
        return ConcatDataset([self.train, Subset(self.train, hardest.tolist())])
