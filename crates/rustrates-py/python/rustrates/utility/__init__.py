"""PyRates' ``pyrates.utility`` import site: ``from rustrates.utility.grid_search import
grid_search`` works as in the seed."""

from .grid_search import grid_search

__all__ = ["grid_search"]
