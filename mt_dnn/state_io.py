"""Nested training state as safetensors + JSON, never pickle.

``state_dict()`` of optimizers, schedulers, gradient scalers, random generators
and regularizers are trees of dicts, lists, tuples, numbers, strings, NumPy
arrays and tensors. :func:`flatten` splits such a tree into ``tensors`` (saved
with safetensors, names are the tree paths) and a JSON-safe ``tree`` in which
each tensor is a reference ``{"__tensor__": name}``; :func:`unflatten` puts it
back together, bit for bit. Dict keys that are not strings (optimizer state is
keyed by parameter index) and tuples are recorded so they come back as they were.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

TENSOR, TUPLE, NDARRAY, INT_KEYS = "__tensor__", "__tuple__", "__ndarray__", "__int_keys__"


def flatten(obj: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    tensors: dict[str, torch.Tensor] = {}

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, torch.Tensor):
            name = path or "root"
            tensors[name] = value.detach().cpu().contiguous()
            return {TENSOR: name}
        if isinstance(value, np.ndarray):
            return {NDARRAY: value.tolist(), "dtype": str(value.dtype)}
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, dict):
            int_keys = bool(value) and all(isinstance(k, int) for k in value)
            if not int_keys and not all(isinstance(k, str) for k in value):
                raise TypeError(f"{path}: dict keys must be all str or all int")
            out = {str(k): walk(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
            return {INT_KEYS: out} if int_keys else out
        if isinstance(value, tuple):
            return {TUPLE: [walk(v, f"{path}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(value)]
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"{path}: cannot store a {type(value).__name__} without pickle")

    return tensors, walk(obj, prefix)


def unflatten(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, list):
        return [unflatten(v, tensors) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if TENSOR in tree:
        return tensors[tree[TENSOR]]
    if TUPLE in tree:
        return tuple(unflatten(v, tensors) for v in tree[TUPLE])
    if NDARRAY in tree:
        return np.asarray(tree[NDARRAY], dtype=tree["dtype"])
    if INT_KEYS in tree:
        return {int(k): unflatten(v, tensors) for k, v in tree[INT_KEYS].items()}
    return {k: unflatten(v, tensors) for k, v in tree.items()}
