"""Tools for a product's vendor writing its catalog: ``stairway check`` and ``stairway new``."""
