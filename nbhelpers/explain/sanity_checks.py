"""Model-randomisation sanity check of explanation methods.

Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim, "Sanity Checks for Saliency Maps", NeurIPS 2018:
re-initialise the layers of a trained model from the top (cascading: the head, then the last block,
then the one before, ...) and compare the explanations of the trained and the randomised model. An
explanation that depends on what the model learned changes: its rank correlation with the trained
explanation drops towards 0 (``randomisation_correlation``). Both models explain the class the trained
model predicts.
"""

from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
from scipy.stats import rankdata

__all__ = ["cascade_layers", "randomise_layers", "rank_correlation", "pearson_correlation", "randomisation_correlation"]


def cascade_layers(model: nn.Module) -> list[str]:
    """Names of the model's parameterised units from the output backwards: the order of the cascade.

    A unit is a top-level child, or an element of a top-level plain ``nn.Sequential`` / ``nn.ModuleList``
    (so ResNet blocks and EfficientNet blocks are reset one at a time; subclasses such as the B-cos
    head stay one unit).
    """
    units: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if type(child) in (nn.Sequential, nn.ModuleList):
            units += [(f"{name}.{index}", element) for index, element in child.named_children()]
        else:
            units.append((name, child))
    return [name for name, unit in reversed(units) if any(True for _ in unit.parameters())]


def _reinitialise(module: nn.Module) -> None:
    for layer in module.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
        elif any(True for _ in layer.parameters(recurse=False)):  # e.g. the B-cos uncentred batch norm
            for name, parameter in layer.named_parameters(recurse=False):
                if name == "weight" and parameter.dim() == 1:
                    nn.init.ones_(parameter)
                elif name == "bias":
                    nn.init.zeros_(parameter)
                else:
                    raise TypeError(f"cannot re-initialise parameter {name!r} of {type(layer).__name__}")
            if isinstance(getattr(layer, "running_var", None), torch.Tensor):
                layer.running_var.fill_(1.0)
        if hasattr(layer, "reset_running_stats"):
            layer.reset_running_stats()


def randomise_layers(model: nn.Module, layers: int | Sequence[str], seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` with ``layers`` re-initialised (their default initialisation, seeded).

    ``layers``: the number of units to reset from the top of ``cascade_layers(model)``, or their names.
    The global random state is left untouched.
    """
    names = cascade_layers(model)[:layers] if isinstance(layers, int) else list(layers)
    randomised = copy.deepcopy(model)
    modules = dict(randomised.named_modules())
    unknown = [name for name in names if name not in modules]
    if unknown:
        raise KeyError(f"no layers named {unknown} in {type(model).__name__}; see cascade_layers(model)")
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        for name in names:
            _reinitialise(modules[name])
    return randomised.eval()


def pearson_correlation(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of (N, D) arrays; NaN where a row is constant."""
    first = first - first.mean(axis=1, keepdims=True)
    second = second - second.mean(axis=1, keepdims=True)
    denominator = np.sqrt((first ** 2).sum(axis=1) * (second ** 2).sum(axis=1))
    numerator = (first * second).sum(axis=1)
    return np.divide(numerator, denominator, out=np.full(len(first), np.nan), where=denominator > 0)


def rank_correlation(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation between matching maps (N, H, W) (average ranks for ties); NaN for constant maps."""
    first_array = first.detach().reshape(first.shape[0], -1).double().cpu().numpy()
    second_array = second.detach().reshape(second.shape[0], -1).double().cpu().numpy()
    return torch.from_numpy(pearson_correlation(rankdata(first_array, axis=1), rankdata(second_array, axis=1)))


def randomisation_correlation(trained: torch.Tensor, randomised: torch.Tensor) -> dict[str, torch.Tensor]:
    """Spearman and Pearson correlation (N,) between matching maps (N, H, W) of the trained model and of its
    randomised copy (``randomise_layers``), both explaining the classes chosen on the trained model."""
    flat = [maps.detach().reshape(maps.shape[0], -1).double().cpu().numpy() for maps in (trained, randomised)]
    return {"spearman": rank_correlation(trained, randomised), "pearson": torch.from_numpy(pearson_correlation(*flat))}
