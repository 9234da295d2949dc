"""Local losses and metrics of forward learning."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from torch import Tensor


def goodness(h: Tensor) -> Tensor:
    """Forward-forward goodness: sum of squared activations, ``[N, H] -> [N]``."""
    return h.pow(2).sum(dim=1)


def forward_forward_loss(h_pos: Tensor, h_neg: list[Tensor], theta: float) -> Tensor:
    """``softplus(-(g_pos - theta)) + mean_k softplus(g_neg_k - theta)``, averaged over nodes.

    Args:
        h_pos: ``[M, H]`` activations of positive inputs.
        h_neg: list of ``[M, H]`` activations of negative inputs.
        theta: goodness threshold.
    """
    pos = F.softplus(-(goodness(h_pos) - theta)).mean()
    neg = torch.stack([F.softplus(goodness(h) - theta).mean() for h in h_neg]).mean()
    return pos + neg


def pair_logits(h: Tensor, pairs: Tensor, threshold: float) -> Tensor:
    """Link logits ``<h_i, h_j> - threshold`` for ``pairs: [2, M]`` -> ``[M]``."""
    return (h[pairs[0]] * h[pairs[1]]).sum(dim=1) - threshold


def link_loss(h: Tensor, pos: Tensor, neg: Tensor, threshold: float) -> Tensor:
    """Binary cross-entropy of positive pairs against negative pairs."""
    lp, ln = pair_logits(h, pos, threshold), pair_logits(h, neg, threshold)
    return (F.binary_cross_entropy_with_logits(lp, torch.ones_like(lp))
            + F.binary_cross_entropy_with_logits(ln, torch.zeros_like(ln)))


def accuracy(pred: Tensor, y: Tensor) -> float:
    """Fraction of ``pred == y`` (both ``[M]``)."""
    if len(y) == 0:
        raise ValueError("accuracy needs at least one labelled node, got an empty mask")
    return float((pred == y).float().mean())


def roc_auc(pos_scores: Tensor, neg_scores: Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half).

    Args:
        pos_scores: ``[P]`` scores of positive pairs.
        neg_scores: ``[Q]`` scores of negative pairs.
    """
    if len(pos_scores) == 0 or len(neg_scores) == 0:
        raise ValueError(f"roc_auc needs positives and negatives, got {len(pos_scores)} "
                         f"and {len(neg_scores)}")
    s = torch.cat([pos_scores, neg_scores]).detach().double().cpu().numpy()
    if not np.isfinite(s).all():
        raise ValueError("roc_auc got NaN or Inf scores")
    ranks = rankdata(s)
    p, q = len(pos_scores), len(neg_scores)
    return float((ranks[:p].sum() - p * (p + 1) / 2) / (p * q))
