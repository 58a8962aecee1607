"""A work-around for recompilation on every full-model sweep (jax-moseq 0.3.7, jax 0.8-0.10).

jax-moseq's ``mixed_map`` builds a new ``jax.pmap`` at each call. The arrays it returns
carry a new abstract mesh axis in their type, so every jitted step that receives them
misses its cache, retraces and recompiles - and returns arrays typed with yet another
axis. A full-model sweep then costs ~25 s of XLA compilation on the CPU whatever the
data size, and the persistent compilation cache never hits (the axis is in the key).

Copying the model state onto the device at the end of each sweep gives the next sweep
plainly typed inputs, so from the third sweep on every step hits its cache. The copy
changes no value: fits are bit-identical (tests/test_jax_fixes.py) and ~100x faster per
sweep on the demo (benchmarks/README.md).
"""

from __future__ import annotations

import functools
import logging

log = logging.getLogger("kpms_flow")
_PATCHED = False


def _plain_arrays(tree):
    import jax

    device = jax.devices()[0]
    return jax.tree.map(
        lambda leaf: jax.device_put(leaf, device) if isinstance(leaf, jax.Array) else leaf, tree
    )


def stabilise_sweep_types() -> None:
    """Wrap jax-moseq's per-sweep resample functions (idempotent).

    keypoint-moseq's fit_model and apply_model look ``resample_model`` up on the module
    at each call, so wrapping the module attribute covers both.
    """
    global _PATCHED
    if _PATCHED:
        return
    from jax_moseq.models import allo_keypoint_slds, keypoint_slds

    for module in (keypoint_slds, allo_keypoint_slds):
        original = module.resample_model

        @functools.wraps(original)
        def resample_model(*args, _original=original, **kwargs):
            return _plain_arrays(_original(*args, **kwargs))

        module.resample_model = resample_model
    _PATCHED = True
    log.info("jax-moseq sweeps: model state re-typed after each sweep (see kpms_flow.jax_fixes)")
