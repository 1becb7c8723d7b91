"""Leave the caller's model exactly as it was: training flags, requires_grad, .grad and hooks."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
)

_locks: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """One re-entrant lock per model object, shared by every engine that wraps it.

    Hooks are registered on the model itself, so two calls on the same model must not interleave even when they
    come from two different ``CamEngine`` instances.
    """
    with _locks_guard:
        lock = _locks.get(model)
        if lock is None:
            lock = threading.RLock()
            _locks[model] = lock
        return lock


@contextmanager
def preserved_model_state(model: nn.Module) -> Iterator[None]:
    """Snapshot what a CAM call may touch and put it back in ``finally``, also when the body raised.

    Runs on every engine call, so it touches only what changed: a resnet50 has ~160 modules, and setting each
    one's flag or copying each one's hook keys every call added up to a millisecond.
    """
    modules = list(model.modules())
    training = [m.training for m in modules]
    params = list(model.parameters())
    requires_grad = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    hook_keys = [{attr: tuple(hooks) for attr in _HOOK_DICTS if (hooks := getattr(m, attr, None))} for m in modules]
    try:
        yield
    finally:
        for module, was_training in zip(modules, training, strict=True):
            if module.training != was_training:
                module.training = was_training
        for module, before in zip(modules, hook_keys, strict=True):
            _drop_new_hooks(module, before)
        for param, flag, grad in zip(params, requires_grad, grads, strict=True):
            if param.requires_grad != flag:
                param.requires_grad_(flag)
            if param.grad is not grad:
                param.grad = grad


def _drop_new_hooks(module: nn.Module, before: dict[str, tuple]) -> None:
    """Remove hooks registered on ``module`` since ``before`` (its hook dicts' keys then)."""
    for attr in _HOOK_DICTS:
        hooks = getattr(module, attr, None)
        if hooks and tuple(hooks) != before.get(attr, ()):
            kept = set(before.get(attr, ()))
            for key in [k for k in hooks if k not in kept]:
                del hooks[key]
