"""The search space, owned here and converted to each library by its searcher."""

from tuner.space._dump import parameter_spec, parameters_block
from tuner.space._params import (
    Beta,
    Categorical,
    Constant,
    Float,
    Int,
    Normal,
    Parameter,
    Quantiled,
    describe,
    same,
    summary,
)
from tuner.space._parse import DISTRIBUTIONS, parse_parameters
from tuner.space._space import Space, config_key, flatten, grid_product, iter_grid, leaf_paths, nest, space_size

__all__ = [
    "DISTRIBUTIONS",
    "Beta",
    "Categorical",
    "Constant",
    "Float",
    "Int",
    "Normal",
    "Parameter",
    "Quantiled",
    "Space",
    "config_key",
    "describe",
    "flatten",
    "grid_product",
    "iter_grid",
    "leaf_paths",
    "nest",
    "parameter_spec",
    "parameters_block",
    "parse_parameters",
    "same",
    "space_size",
    "summary",
]
