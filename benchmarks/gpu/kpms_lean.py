"""Import keypoint-moseq for fitting where its interactive modules' dependencies are absent.

``keypoint_moseq/__init__.py`` (0.8.1) imports every submodule. Two of them serve only the
interactive notebook and import widget stacks at module level: ``analysis`` (``import panel
as pn``, which pulls in bokeh, param, pyviz_comms, tornado...) and ``calibration`` (a
widget for choosing the noise prior). The fitting path (``format_data``, ``fit_pca``,
``init_model``, ``fit_model``, ``load_checkpoint``, ``update_hypparams``,
``reindex_syllables_in_checkpoint``, ``extract_results``) lives in ``io``, ``util``,
``viz`` and ``fitting``, which import neither. On the GPU machine the wheels of that widget
stack (panel alone is 30 MB) would not fit in one call's 64 MiB next to the rest, so there
``import_keypoint_moseq()`` runs keypoint-moseq's own ``__init__`` without those two
imports: every function the pipeline calls is keypoint-moseq's own code, nothing is
stubbed, and ``keypoint_moseq.analysis`` stays importable wherever panel is installed.

It is used only when ``panel`` cannot be imported (or ``lean=True``); otherwise this is a
plain ``import keypoint_moseq``.
"""

from __future__ import annotations

import importlib.util
import sys

# The two lines of keypoint_moseq/__init__.py (0.8.1) left out, and why.
LEFT_OUT = {
    "from .analysis import *\n": "analysis: notebook statistics and panel widgets",
    "from .calibration import noise_calibration\n": "calibration: an interactive widget",
}


def panel_importable() -> bool:
    try:
        return importlib.util.find_spec("panel") is not None
    except ImportError:  # a blocked or broken parent package
        return False


def import_keypoint_moseq(lean: bool | None = None):
    """``keypoint_moseq``, imported in full, or without its interactive modules.

    Parameters
    ----------
    lean : bool or None
        None: lean only when panel is not importable. True: always lean (to test that the
        fitting path needs no more). False: the plain import.

    Returns
    -------
    (module, str)
        The package and how it was imported ("full" or "lean").
    """
    if "keypoint_moseq" in sys.modules:
        module = sys.modules["keypoint_moseq"]
        return module, getattr(module, "_kpms_flow_import", "full")
    if lean is None:
        lean = not panel_importable()
    if not lean:
        import keypoint_moseq

        return keypoint_moseq, "full"

    spec = importlib.util.find_spec("keypoint_moseq")
    if spec is None or spec.origin is None:
        raise ImportError("keypoint_moseq is not installed (carry its wheel: benchmarks/gpu/)")
    source = open(spec.origin, encoding="utf-8").read()
    for line in LEFT_OUT:
        if line not in source:
            raise ImportError(
                f"{spec.origin} has no line {line.strip()!r}: this keypoint-moseq is not the "
                "0.8.1 that benchmarks/gpu/kpms_lean.py knows; install panel and its "
                "dependencies instead (a plain import)"
            )
        source = source.replace(line, "")
    module = importlib.util.module_from_spec(spec)
    sys.modules["keypoint_moseq"] = module
    try:
        exec(compile(source, spec.origin, "exec"), module.__dict__)
    except BaseException:
        del sys.modules["keypoint_moseq"]
        raise
    module._kpms_flow_import = "lean"
    return module, "lean"
