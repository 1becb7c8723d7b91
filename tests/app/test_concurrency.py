"""Many users at once on one server: threads drive the cached path the pages use (dashboard's cached wrappers on
the one shared ``LoadedWorkspace`` from ``st.cache_resource``) with different images, layers, targets and methods,
and each gets exactly what the same request gives when run alone."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import streamlit as st
import torch

from dashboard import cams, predictions, samples
from dashboard.workspaces import load
from gradcam_core import METHOD_NAMES

USERS = 8
REQUESTS_PER_USER = 6


def _request(user: int, step: int, layers: list[str], num_classes: int) -> tuple[int, str, int, str]:
    """(test index, layer, target, method): every user works on other images, layers and classes."""
    index = 7 * user + 3 * step
    return (index, layers[(user + step) % len(layers)], (user * 3 + step) % num_classes,
            METHOD_NAMES[(user + 2 * step) % len(METHOD_NAMES)])


def _serve(loaded, request) -> tuple[np.ndarray, np.ndarray, int]:
    """What the explorer page computes for one view: logits, the chosen layer's map, the gallery's predictions."""
    index, layer, target, method = request
    sample = samples.test_sample(loaded, index)
    inputs = samples.test_input(loaded.model_id, sample.key, index, loaded)
    logits = cams.sample_logits(loaded.model_id, sample.key, loaded, inputs.tensor)
    cam = cams.layer_maps(loaded, sample, inputs.tensor, method, target)[layer]
    predicted = int(predictions.test_predictions(loaded.model_id, loaded.key, loaded).predicted[index])
    return logits.copy(), cam.copy(), predicted


def _model_state(model: torch.nn.Module):
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                + len(getattr(m, "_backward_pre_hooks", {})) for m in model.modules())
    grads = [name for name, p in model.named_parameters() if p.grad is not None]
    return hooks, grads, [p.requires_grad for p in model.parameters()], [m.training for m in model.modules()]


def test_eight_users_at_once_get_what_each_gets_alone(one_torch_thread):
    loaded = load("digits")
    model = loaded.workspace.model
    state_before = _model_state(model)
    requests = {(user, step): _request(user, step, loaded.layers, len(loaded.class_names))
                for user in range(USERS) for step in range(REQUESTS_PER_USER)}
    alone = {}
    for key, request in requests.items():
        st.cache_data.clear()  # alone: nothing cached, nobody else running
        alone[key] = _serve(loaded, request)
    st.cache_data.clear()

    start = threading.Barrier(USERS)

    def user(number: int):
        start.wait()
        return {(number, step): _serve(loaded, requests[number, step]) for step in range(REQUESTS_PER_USER)}

    started = time.perf_counter()
    with ThreadPoolExecutor(USERS) as pool:
        together = {}
        for part in pool.map(user, range(USERS)):  # re-raises any exception of a thread
            together.update(part)
    elapsed = time.perf_counter() - started
    print(f"\n{USERS} threads, {len(requests)} requests ({len({r[0] for r in requests.values()})} images, "
          f"{len({r[1] for r in requests.values()})} layers, {len({r[2] for r in requests.values()})} targets, "
          f"{len({r[3] for r in requests.values()})} methods) in {elapsed:.2f} s")

    assert together.keys() == alone.keys()
    for key in requests:
        (logits, cam, predicted), (logits_alone, cam_alone, predicted_alone) = together[key], alone[key]
        assert np.array_equal(logits, logits_alone), f"user {key[0]} step {key[1]}: other logits"
        assert np.array_equal(cam, cam_alone), f"user {key[0]} step {key[1]} {requests[key]}: another map"
        assert predicted == predicted_alone
    hooks, grads, requires_grad, training = _model_state(model)
    assert hooks == 0, f"{hooks} hooks left on the shared model"
    assert (hooks, grads, requires_grad, training) == state_before
    assert load("digits") is loaded  # one shared model for everyone
