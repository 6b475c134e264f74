"""The locations a dense head's own assignment made positive in its last ``loss_by_feat``,
read from its ``get_targets`` on the way through (no second assignment, no extra pass).

LD (Zheng et al. 2022) distils boxes at the student's positive locations ("main region");
:class:`DetKDMLDistiller` does the same with ``box_region='positive'``.
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

import torch
from mmdet.models.dense_heads import (ATSSHead, FCOSHead, FSAFHead, GFLHead, NASFCOSHead,
                                      PISARetinaHead, PISASSDHead, RetinaHead, RetinaSepBNHead,
                                      RTMDetHead, RTMDetSepBNHead, SSDHead, TOODHead)
from torch import Tensor, nn

# Where each head's ``get_targets`` returns its per-level labels, and their layout:
#   'images_to_levels': element i is a list of (B, N_l) tensors (AnchorHead and its kin);
#   'level_concat': element i is a list of (B·N_l,) tensors, images one after another (FCOS).
# Matched by exact type: a subclass may assign differently.
LABELS_AT: Dict[type, tuple] = {
    RetinaHead: (0, 'images_to_levels'), RetinaSepBNHead: (0, 'images_to_levels'),
    PISARetinaHead: (0, 'images_to_levels'), FSAFHead: (0, 'images_to_levels'),
    SSDHead: (0, 'images_to_levels'), PISASSDHead: (0, 'images_to_levels'),
    ATSSHead: (1, 'images_to_levels'), GFLHead: (1, 'images_to_levels'),
    TOODHead: (1, 'images_to_levels'), RTMDetHead: (1, 'images_to_levels'),
    RTMDetSepBNHead: (1, 'images_to_levels'),
    FCOSHead: (0, 'level_concat'), NASFCOSHead: (0, 'level_concat'),
}
POSITIVE_HEADS = tuple(sorted(h.__name__ for h in LABELS_AT))


def positives_unsupported(head: nn.Module) -> Optional[str]:
    """Why the positives of ``head`` cannot be read, or None when they can."""
    if type(head) not in LABELS_AT:
        return (f'the positive locations of {type(head).__name__} are not read by mmkd '
                f'(heads that are: {", ".join(POSITIVE_HEADS)})')
    return None


class Positives:
    """Filled by :func:`record_positives`: ``mask`` (B, N) bool after the head's loss."""
    mask: Optional[Tensor] = None


def _labels_to_mask(labels: List[Tensor], layout: str, batch: int, num_classes: int) -> Tensor:
    if layout == 'level_concat':
        labels = [level.reshape(batch, -1) for level in labels]
    labels = torch.cat(labels, 1)
    # mmdet labels background as num_classes (and ignored priors keep it too).
    return (labels >= 0) & (labels < num_classes)


@contextmanager
def record_positives(head: nn.Module, batch: int) -> Iterator[Positives]:
    """Within the block, the head's ``get_targets`` results are read once more on their way
    back to its own ``loss_by_feat``; afterwards ``Positives.mask`` (B, N) marks the locations
    (levels concatenated, mmdet's prior order, as :func:`dense_predictions`) the head's
    assigner made positive. The head's behaviour is unchanged.

    Raises:
        TypeError: When ``head`` is not one of :data:`POSITIVE_HEADS`.
    """
    reason = positives_unsupported(head)
    if reason is not None:
        raise TypeError(reason)
    index, layout = LABELS_AT[type(head)]
    found = Positives()
    original = head.get_targets

    def get_targets(*args, **kwargs):
        targets = original(*args, **kwargs)
        if targets is not None and targets[index] is not None:
            found.mask = _labels_to_mask(list(targets[index]), layout, batch, head.num_classes)
        return targets

    head.get_targets = get_targets  # an instance attribute: the class is untouched
    try:
        yield found
    finally:
        del head.get_targets
