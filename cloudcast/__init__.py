"""cloudcast: one spec, one private encrypted network across clouds and your own machines."""

__version__ = "0.1.0"
