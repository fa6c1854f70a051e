"""The fleet: a control plane (``stairway serve``) and the agents it upgrades."""
