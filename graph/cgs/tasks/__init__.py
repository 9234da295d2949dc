"""CGS tasks: porous-network pressure, graph value iteration, graph classification."""

from .porous import PorousConfig, make_pore_network, make_porous_dataset, solve_pressure
from .value_iteration import (MDPConfig, bellman_backup, greedy_policy, make_mdp,
                              make_mdp_dataset, policy_accuracy, value_iteration)

__all__ = [
    "MDPConfig", "PorousConfig", "bellman_backup", "greedy_policy", "make_mdp",
    "make_mdp_dataset", "make_pore_network", "make_porous_dataset", "policy_accuracy",
    "solve_pressure", "value_iteration",
]
