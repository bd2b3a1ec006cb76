"""Exact 2-parameter landscapes: models, data presets, problems, test functions.

>>> from lossmap import toy
>>> p = toy.problem("tanh", "two-points", "huber", delta=0.5)
>>> s = p.surface(steps=51)
>>> s.shape
(51, 51)
"""

from lossmap.toy import functions, terms
from lossmap.toy._base import Landscape, Region
from lossmap.toy.data import PRESETS, Dataset, dataset, preset_names
from lossmap.toy.models import MODELS, Model, get_model
from lossmap.toy.problem import Minimum, Problem, problem

__all__ = [
    "MODELS",
    "PRESETS",
    "Dataset",
    "Landscape",
    "Minimum",
    "Model",
    "Problem",
    "Region",
    "dataset",
    "functions",
    "get_model",
    "preset_names",
    "problem",
    "terms",
]
