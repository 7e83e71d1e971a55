"""Losses on logits and scores: cross-entropy, margin ranking and
multi-margin losses, each with a fused loss-and-gradient form.

The wrappers check the arguments (``TypeError``/``ValueError``/
``IndexError`` naming them), view the logits as ``(rows, n)`` with the
class axis last (:mod:`softjit._run`) and run the row kernels of
:mod:`softjit.kernels.gradients`.  Per-row losses are accumulated in float64 and
reduced here.
"""

from ._cross_entropy import cross_entropy, cross_entropy_with_grad
from ._margin import (
    margin_ranking_loss,
    margin_ranking_loss_with_grad,
    multi_margin_loss,
    multi_margin_loss_with_grad,
)

__all__ = [
    "cross_entropy",
    "cross_entropy_with_grad",
    "margin_ranking_loss",
    "margin_ranking_loss_with_grad",
    "multi_margin_loss",
    "multi_margin_loss_with_grad",
]
