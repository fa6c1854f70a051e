"""Example products that ship a Stairway catalog."""
