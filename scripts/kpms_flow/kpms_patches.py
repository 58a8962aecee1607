"""Every patch kpms-flow applies to keypoint-moseq / jax-moseq internals, in one place.

Targeted versions: keypoint-moseq 0.8.1, jax-moseq 0.3.7, jax/jaxlib 0.9.2 (the CPU lock).
Each patch rests on assumptions about those versions' code; :func:`check_assumptions`
states them and ``tests/test_kpms_patches.py`` fails loudly when an upgrade breaks one.

1. **Sweep re-typing** (:func:`install_sweep_wrappers`). jax-moseq's ``mixed_map`` builds
   a new ``jax.pmap`` at each call; the arrays it returns carry a new abstract mesh axis
   in their type, so every jitted step that receives them misses its cache and
   recompiles (~25 s of XLA compilation per full-model sweep on the CPU whatever the data
   size; the persistent compile cache never hits). Copying the model state onto the
   device after each sweep gives the next sweep plainly typed inputs. Values are
   unchanged: fits are bit-identical (tests/test_kpms_patches.py), ~100x faster per sweep on
   the demo (benchmarks/README.md). The inputs of each sweep are re-typed the same way, so
   the first sweep (state fresh from ``init_model``, uncommitted, or from a checkpoint,
   NumPy) and the later ones (committed) share one compilation instead of two.
2. **Sweep heartbeat** (same wrapper). The fit watchdog (:mod:`kpms_flow.watchdog`) needs
   a sign of life after every sweep; keypoint-moseq's ``fit_model`` and ``apply_model``
   look ``resample_model`` up on jax-moseq's model modules at each call, so wrapping the
   module attribute reaches every sweep of both.
3. **Recorded saves** (:func:`recorded_saves`). ``fit_model`` appends snapshots to its
   HDF5 checkpoint in place; a kill during that write leaves a snapshot a rerun must not
   trust. Wrapping ``keypoint_moseq.fitting.save_hdf5`` records each snapshot once its
   save returned (``saved_iterations.json``, written atomically), and
   ``keypoint_moseq.fitting.plot_progress`` is made to save its figure atomically.
4. **Cached table-count sampler** (:func:`cache_table_count_sampler`). jax-moseq's
   ``transitions._sample_loyal_crf_table_counts`` (the HDP transition update, every sweep)
   is a numba ``@njit`` function without ``cache=True``: each fitting or apply job compiled
   it again at its first sweep (0.96 s). Turning on numba's own on-disk cache for that
   function (``Dispatcher.enable_caching``) makes later jobs load the machine code (0.36 s;
   benchmarks/numba_sampler.py); numba keys it by the source file and the CPU, so the
   numbers are the same.
5. **Notebook statistics on first use** (:func:`import_analysis_on_first_use`).
   ``keypoint_moseq/__init__.py`` star-imports ``analysis`` (group statistics, transition
   graphs, the syllable-labelling widget), which imports panel at module level and with it
   bokeh, param, tornado...: 1.8 s of CPU and of wall time in every process that imports
   keypoint-moseq, 22 % of that import (benchmarks/kpms_import.py: 8.22 -> 6.39 CPU-s),
   though only the group-statistics job calls ``analysis``. Importing :mod:`kpms_flow`
   installs an import hook that runs keypoint-moseq's own ``__init__`` without that one
   line and binds ``analysis``'s names when one is first asked for (PEP 562 module
   ``__getattr__``), as the star-import would have: the same functions, the same
   namespace, none of it rewritten (tests/test_kpms_patches.py; benchmarks/README.md,
   "keypoint-moseq's import without its notebook module").
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import importlib.machinery
import importlib.util
import inspect
import json
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("kpms_flow")

TARGET_VERSIONS = {"keypoint-moseq": "0.8.1", "jax-moseq": "0.3.7", "jax": "0.9.2"}

# Files a fit's work folder holds besides keypoint-moseq's checkpoint.h5.
SAVED_ITERATIONS = "saved_iterations.json"

_SWEEPS_WRAPPED = False


# ---------------------------------------------------------------- 1 + 2: sweeps
def _plain_arrays(tree, numpy_too=False):
    """JAX arrays in ``tree`` committed to the default device without a mesh axis in their
    type (on the same device ``device_put`` shares the buffer). ``numpy_too``: NumPy arrays
    as well (a copy to the device): for the model state only, which is NumPy once, when
    read from a checkpoint, never the data, which the caller may pass as NumPy each sweep."""
    import jax
    import numpy as np

    device = jax.devices()[0]
    kinds = (jax.Array, np.ndarray) if numpy_too else jax.Array
    return jax.tree.map(lambda leaf: jax.device_put(leaf, device) if isinstance(leaf, kinds) else leaf, tree)


def install_sweep_wrappers() -> None:
    """Wrap jax-moseq's per-sweep ``resample_model`` (idempotent): re-type its result and,
    inside a watched fit, beat the watchdog once the sweep has finished computing."""
    global _SWEEPS_WRAPPED
    if _SWEEPS_WRAPPED:
        return
    import jax
    from jax_moseq.models import allo_keypoint_slds, keypoint_slds

    from . import watchdog

    for module in (keypoint_slds, allo_keypoint_slds):
        original = module.resample_model

        @functools.wraps(original)
        def resample_model(*args, _original=original, **kwargs):
            # Inputs too: the first sweep's state comes uncommitted (from init_model) or
            # as NumPy (apply_model's seed from a checkpoint), the later ones committed by
            # the line below; without this each fit or apply compiles the whole sweep twice
            # (benchmarks/README.md, "Full-model sweeps"). The state is passed by keyword.
            args, kwargs = _plain_arrays(args), _plain_arrays(kwargs, numpy_too=True)
            # Outputs: keypoint-moseq's own code between sweeps (NaN check, saves) sees
            # plain types too. JAX returns before computing: wait, so that a beat means a
            # finished sweep (keypoint-moseq's NaN check right after waits anyway).
            model = jax.block_until_ready(_plain_arrays(_original(*args, **kwargs)))
            watchdog.sweep_finished()
            return model

        module.resample_model = resample_model
    _SWEEPS_WRAPPED = True
    log.info("jax-moseq sweeps: model state re-typed after each sweep (kpms_flow.kpms_patches)")


# ---------------------------------------------------------------- 3: recorded saves
@contextlib.contextmanager
def recorded_saves(work: Path):
    """Record each snapshot keypoint-moseq saves into ``work/checkpoint.h5`` once written.

    Only snapshots listed in ``work/saved_iterations.json`` are resumed from
    (:func:`kpms_flow.fitting.trusted_iterations`). The progress figure is saved atomically.
    """
    from keypoint_moseq import fitting

    from .atomic import save_figure

    work = Path(work)
    checkpoint = str(work / "checkpoint.h5")
    save_hdf5, plot_progress = fitting.save_hdf5, fitting.plot_progress

    def recording_save(filepath, save_dict, datapath=None, *args, **kwargs):
        save_hdf5(filepath, save_dict, datapath, *args, **kwargs)
        if os.path.abspath(filepath) != os.path.abspath(checkpoint):
            return
        if datapath is None:
            new = [int(k) for k in save_dict.get("model_snapshots", {})]
        elif datapath.startswith("model_snapshots/"):
            new = [int(datapath.split("/")[1])]
        else:
            new = []
        record_saved(work, new)

    def atomic_progress_plot(*args, savefig=True, **kwargs):
        import matplotlib.pyplot as plt

        fig, axs = plot_progress(*args, savefig=False, **kwargs)
        if savefig:
            save_figure(work / "fitting_progress.pdf", fig)
        else:
            plt.close(fig)
        return fig, axs

    fitting.save_hdf5, fitting.plot_progress = recording_save, atomic_progress_plot
    try:
        yield
    finally:
        fitting.save_hdf5, fitting.plot_progress = save_hdf5, plot_progress


def record_saved(work: Path, iterations) -> None:
    """Add ``iterations`` to the work folder's list of completely saved snapshots."""
    from .atomic import write_text

    known = set(recorded_iterations(work)) | {int(i) for i in iterations}
    write_text(Path(work) / SAVED_ITERATIONS, json.dumps(sorted(known)))


def recorded_iterations(work) -> list[int]:
    """Snapshots of a work folder's checkpoint whose save finished."""
    try:
        return sorted(int(i) for i in json.loads((Path(work) / SAVED_ITERATIONS).read_text()))
    except (OSError, ValueError):
        return []


# ---------------------------------------------------------------- 4: numba cache
def cache_table_count_sampler() -> bool:
    """Keep jax-moseq's numba-compiled table-count sampler in numba's on-disk cache
    (``NUMBA_CACHE_DIR`` when set, else beside its source or in the user's cache folder).

    Returns whether caching is on: False (compiled in each process, as without the patch,
    and logged) when numba finds no folder it can write to.
    """
    from jax_moseq.utils import transitions

    try:
        transitions._sample_loyal_crf_table_counts.enable_caching()
    except RuntimeError as error:  # numba: "cannot cache function ...: no locator available"
        log.warning("numba compiles jax-moseq's table-count sampler in every job: %s", error)
        return False
    return True


# ---------------------------------------------------------------- 5: analysis on first use
# The line of keypoint_moseq/__init__.py (0.8.1) that the import hook leaves out.
ANALYSIS_IMPORT = "from .analysis import *\n"


def _split_init(source: str) -> tuple[str, set[str]] | None:
    """keypoint-moseq's ``__init__`` source without :data:`ANALYSIS_IMPORT`, and the names
    its later lines bind (a star-import of ``analysis`` must not replace those); None when
    the source has not exactly one such line."""
    if source.count(ANALYSIS_IMPORT) != 1:
        return None
    before, after = source.split(ANALYSIS_IMPORT)
    bound_after = set()
    for node in ast.walk(ast.parse(after)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound_after |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound_after.add(node.id)
    return before + after, bound_after


def _bind_analysis(package, bound_after: set[str], name: str):
    """PEP 562 ``__getattr__`` of the package: ``from .analysis import *`` now, then ``name``."""
    # Private names (the import system's hasattr probes, dunders of copy, pickle, inspect):
    # never one of analysis's, whose star-import binds public names only.
    if name.startswith("_"):
        raise AttributeError(f"module 'keypoint_moseq' has no attribute {name!r}")
    try:
        analysis = importlib.import_module("keypoint_moseq.analysis")
    except ImportError as error:  # panel absent (the GPU machine): the fitting path never asks
        raise AttributeError(
            f"module 'keypoint_moseq' has no attribute {name!r} unless keypoint_moseq.analysis "
            f"imports (kpms-flow imports it on first use): {error}"
        ) from error
    del package.__getattr__
    for key, value in vars(analysis).items():
        if not key.startswith("_") and key not in bound_after:
            setattr(package, key, value)
    try:
        return package.__dict__[name]
    except KeyError:
        raise AttributeError(f"module 'keypoint_moseq' has no attribute {name!r}") from None


class _AnalysisOnFirstUse:
    """Finds ``keypoint_moseq`` where Python would and runs its own ``__init__``, less the
    ``analysis`` star-import, which the package's ``__getattr__`` does when first needed.

    A meta path finder and its loader (``find_spec``, ``create_module``, ``exec_module``),
    without importlib.abc's base classes: importing those costs every job 17 ms."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keypoint_moseq":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or not spec.origin.endswith("__init__.py"):
            return spec
        split = _split_init(Path(spec.origin).read_text(encoding="utf-8"))
        if split is None:  # not the __init__ this knows: the plain import (check_assumptions)
            return spec
        self._source, self._bound_after = split
        spec.loader = self
        return spec

    def create_module(self, spec):
        return None  # Python's default module

    def exec_module(self, module):
        exec(compile(self._source, module.__spec__.origin, "exec"), module.__dict__)
        module.__getattr__ = functools.partial(_bind_analysis, module, self._bound_after)


def import_analysis_on_first_use() -> None:
    """Make later imports of keypoint-moseq skip ``analysis`` until it is used (idempotent;
    no effect once keypoint-moseq is imported)."""
    if not any(isinstance(finder, _AnalysisOnFirstUse) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AnalysisOnFirstUse())


# ---------------------------------------------------------------- the assumptions
def check_assumptions() -> list[str]:
    """What the patches assume of the installed keypoint-moseq / jax-moseq; [] when all hold.

    Each entry names the broken assumption and the patch that depends on it.
    """
    from importlib.metadata import version

    problems = []
    for package, target in TARGET_VERSIONS.items():
        installed = version(package)
        if installed != target:
            problems.append(
                f"{package} {installed} installed, the patches target {target}: re-check every "
                "assumption below and the bit-identity tests, then update TARGET_VERSIONS"
            )
    from jax_moseq.models import allo_keypoint_slds, keypoint_slds
    from keypoint_moseq import fitting

    for module in (keypoint_slds, allo_keypoint_slds):
        if not callable(getattr(module, "resample_model", None)):
            problems.append(f"{module.__name__}.resample_model is gone (patches 1, 2)")
    for function in (fitting.fit_model, fitting.apply_model):
        source = inspect.getsource(function)
        for model_module in ("keypoint_slds", "allo_keypoint_slds"):
            # Looked up on the module at call time, so the wrapper is what runs.
            if f"{model_module}.resample_model" not in source:
                problems.append(
                    f"keypoint_moseq.fitting.{function.__name__} no longer calls "
                    f"{model_module}.resample_model through the module (patches 1, 2)"
                )
    fit_source = inspect.getsource(fitting.fit_model)
    for name in ("save_hdf5", "plot_progress"):
        if not hasattr(fitting, name) or f"{name}(" not in fit_source:
            problems.append(
                f"keypoint_moseq.fitting.fit_model no longer calls the module-level {name} "
                "(patch 3: recorded saves)"
            )
    from jax_moseq.utils import transitions

    sampler = getattr(transitions, "_sample_loyal_crf_table_counts", None)
    if not callable(getattr(sampler, "enable_caching", None)):
        problems.append(
            "jax_moseq.utils.transitions._sample_loyal_crf_table_counts is no longer a numba "
            "dispatcher (patch 4: cached table-count sampler)"
        )
    init = Path(importlib.util.find_spec("keypoint_moseq").origin)
    if _split_init(init.read_text(encoding="utf-8")) is None:
        problems.append(
            f"{init} has not exactly one line {ANALYSIS_IMPORT.strip()!r} (patch 5: analysis "
            "on first use; keypoint-moseq is then imported whole, as without it)"
        )
    if "model_snapshots/" not in fit_source:
        problems.append(
            "keypoint_moseq.fitting.fit_model no longer saves snapshots under "
            "'model_snapshots/<iteration>' (patch 3 parses that path)"
        )
    return problems
