"""Nested training state through safetensors + JSON, bit for bit, without pickle."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load, save

from mt_dnn.runtime import rng_state, set_rng_state
from mt_dnn.state_io import flatten, unflatten


def roundtrip(obj):
    tensors, tree = flatten(obj)
    tree = json.loads(json.dumps(tree))  # the JSON file
    tensors = load(save(tensors)) if tensors else {}  # the safetensors file
    return unflatten(tree, tensors)


def test_optimizer_state_roundtrip_is_exact():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):
        model(torch.randn(5, 4)).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()
    state = roundtrip(opt.state_dict())
    fresh = torch.optim.AdamW(torch.nn.Linear(4, 3).parameters(), lr=1e-2)
    fresh.load_state_dict(state)
    for key, value in opt.state_dict()["state"].items():
        for name, tensor in value.items():
            assert torch.equal(fresh.state_dict()["state"][key][name], tensor)
    assert fresh.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


def test_rng_state_roundtrip_replays_every_generator():
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    saved = roundtrip(rng_state())
    expected = (random.random(), np.random.rand(), torch.rand(2))
    random.seed(2)
    np.random.seed(2)
    torch.manual_seed(2)
    set_rng_state(saved)
    again = (random.random(), np.random.rand(), torch.rand(2))
    assert expected[0] == again[0] and expected[1] == again[1]
    assert torch.equal(expected[2], again[2])


def test_tuples_int_keys_arrays_and_scalars_come_back_as_they_were():
    obj = {"t": (1, 2.5, None), "i": {3: "x", 7: [True]}, "a": np.arange(3, dtype=np.uint32)}
    back = roundtrip(obj)
    assert back["t"] == (1, 2.5, None) and back["i"] == {3: "x", 7: [True]}
    assert back["a"].dtype == np.uint32 and back["a"].tolist() == [0, 1, 2]


def test_objects_that_would_need_pickle_are_refused():
    with pytest.raises(TypeError, match="without pickle"):
        flatten({"f": object()})
    with pytest.raises(TypeError, match="keys must be all str or all int"):
        flatten({1: "a", "b": 2})
