"""Graph value iteration: random deterministic MDPs whose states are graph nodes.

Every state has ``actions`` actions, each moving deterministically to a
distinct random other state with a reward uniform in ``reward_range``. The optimal values solve the Bellman
equation ``V(i) = max_j [R(i, j) + discount * V(j)]`` and are found by value
iteration to ``tol``.

For message passing the edges are stored reversed: ``edge_index[:, e] = (j, i)``
carries the reward ``R(i, j)`` of the action ``i -> j`` to the state ``i``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from .sizes import sized_dataset



@dataclass
class MDPConfig:
    """Parameters of a random graph MDP.

    Attributes:
        actions: actions per state (each to a distinct random other state).
        discount: MDP discount in (0, 1).
        reward_range: rewards uniform in this range.
        tol: value-iteration tolerance (max-abs change).
        max_iter: value-iteration bound.
    """

    actions: int = 5
    discount: float = 0.9
    reward_range: tuple[float, float] = (-1.0, 1.0)
    tol: float = 1e-10
    max_iter: int = 10_000


def q_values(value: Tensor, edge_index: Tensor, reward: Tensor, discount: float) -> Tensor:
    """``Q(i, j) = R(i, j) + discount * V(j)`` per action edge ``(j, i)``: ``[E]``."""
    return reward + discount * value[edge_index[0]]


def bellman_backup(value: Tensor, edge_index: Tensor, reward: Tensor, discount: float,
                   num_nodes: int) -> Tensor:
    """``max_j Q(i, j)`` per state ``[N]`` (``-inf`` for a state with no action)."""
    q = q_values(value, edge_index, reward, discount)
    out = torch.full((num_nodes,), float("-inf"), dtype=q.dtype)
    return out.scatter_reduce(0, edge_index[1], q, reduce="amax", include_self=True)


def greedy_policy(value: Tensor, edge_index: Tensor, reward: Tensor, discount: float,
                  num_nodes: int) -> Tensor:
    """The greedy action of each state as the index of its chosen edge: ``[N]``."""
    q = q_values(value, edge_index, reward, discount)
    best = bellman_backup(value, edge_index, reward, discount, num_nodes)
    is_best = q >= best[edge_index[1]]
    eid = torch.arange(len(q))
    big = torch.full((num_nodes,), len(q), dtype=torch.long)
    chosen = big.scatter_reduce(0, edge_index[1][is_best], eid[is_best], reduce="amin",
                                include_self=True)
    return chosen


def value_iteration(edge_index: Tensor, reward: Tensor, discount: float, num_nodes: int,
                    tol: float = 1e-10, max_iter: int = 10_000) -> tuple[Tensor, int]:
    """Optimal values ``[N]`` (float64) and the number of sweeps."""
    if not 0.0 < discount < 1.0:
        raise ValueError(f"discount must be in (0, 1), got {discount}")
    if edge_index.numel() == 0:
        raise ValueError("the MDP has no actions (edge_index is empty)")
    has_action = torch.zeros(num_nodes, dtype=torch.bool)
    has_action[edge_index[1]] = True
    if not has_action.all():
        raise ValueError(f"every state needs an action; states without one: "
                         f"{torch.nonzero(~has_action).flatten().tolist()[:10]}")
    v = torch.zeros(num_nodes, dtype=torch.float64)
    r = reward.double()
    for it in range(1, max_iter + 1):
        nxt = bellman_backup(v, edge_index, r, discount, num_nodes)
        done = float((nxt - v).abs().max()) <= tol
        v = nxt
        if done:
            return v, it
    return v, max_iter


def make_mdp(num_states: int, seed: int, config: MDPConfig | None = None) -> Data:
    """One random graph MDP with its optimal values.

    Returns:
        ``Data`` with ``x: [N, 1]`` (a constant),
        ``edge_index: [2, E]`` reversed actions, ``edge_attr: [E, 1]`` reward,
        ``y: [N, 1]`` optimal value scaled by ``1 - discount`` (in the reward
        range), ``value [N]`` (float64, unscaled), ``discount``, ``policy [N]``
        (optimal edge per state).
    """
    if not isinstance(num_states, (int, np.integer)) or num_states < 3:
        raise ValueError(f"num_states must be an int >= 3, got {num_states!r}")
    c = config or MDPConfig()
    gen = torch.Generator().manual_seed(int(seed))
    k = min(c.actions, num_states - 1)
    # k distinct other states per state: ranks of random keys, self excluded
    keys = torch.rand(num_states, num_states, generator=gen)
    keys.fill_diagonal_(2.0)
    nxt = torch.argsort(keys, dim=1)[:, :k]  # [N, k]
    ei = torch.stack([nxt.reshape(-1), torch.arange(num_states).repeat_interleave(k)])
    lo, hi = c.reward_range
    reward = lo + (hi - lo) * torch.rand(ei.shape[1], generator=gen, dtype=torch.float64)
    value, _ = value_iteration(ei, reward, c.discount, num_states, c.tol, c.max_iter)
    x = torch.ones(num_states, 1)
    return Data(
        x=x, edge_index=ei, edge_attr=reward[:, None].float(),
        y=((1.0 - c.discount) * value)[:, None].float(), value=value,
        reward=reward, discount=float(c.discount),
        policy=greedy_policy(value, ei, reward, c.discount, num_states),
    )


def make_mdp_dataset(count: int, size_range: tuple[int, int], seed: int,
                     config: MDPConfig | None = None) -> list[Data]:
    """``count`` MDPs with state counts uniform in ``size_range`` (inclusive, >= 3)."""
    return sized_dataset(lambda n, s: make_mdp(n, s, config), count, size_range, seed, min_size=3)


def policy_accuracy(pred_value: Tensor, data: Data) -> float:
    """Fraction of states whose greedy action under ``pred_value: [N]`` is optimal."""
    pol = greedy_policy(pred_value.double(), data.edge_index, data.reward,
                        data.discount, data.num_nodes)
    return float((pol == data.policy).double().mean())
