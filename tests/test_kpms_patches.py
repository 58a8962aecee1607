"""The patches of keypoint-moseq / jax-moseq internals (kpms_flow.kpms_patches): their
assumptions hold for the installed versions, and the sweep re-typing changes no number."""

import contextlib
import os

import numpy as np
import pytest

from conftest import tiny_keypoints

os.environ.setdefault("MPLBACKEND", "Agg")

pytestmark = pytest.mark.workflow  # compiles and runs keypoint-moseq sweeps


# keypoint-moseq's init_model / apply_model settings of the tiny model.
INIT_SETTINGS = dict(
    anterior_idxs=np.array([0]), posterior_idxs=np.array([6]),
    ar_hypparams=dict(latent_dim=3, nlags=3, S_0_scale=0.01, K_0_scale=10.0),
    trans_hypparams=dict(num_states=10, gamma=1e3, alpha=5.7, kappa=1e3),
    obs_hypparams=dict(sigmasq_0=0.1, sigmasq_C=0.1, nu_sigma=1e5, nu_s=5),
    cen_hypparams=dict(sigmasq_loc=0.5), error_estimator=dict(slope=-0.5, intercept=0.25),
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """(data, model, metadata): keypoint-moseq's init_model on two small demo sessions."""
    import keypoint_moseq as kpms

    coordinates, confidences, bodyparts = tiny_keypoints(tmp_path_factory.mktemp("tiny"))
    config = dict(bodyparts=bodyparts, use_bodyparts=bodyparts)
    data, metadata = kpms.format_data(coordinates, confidences, **config)
    pca = kpms.fit_pca(**data, anterior_idxs=np.array([0]), posterior_idxs=np.array([6]))
    model = kpms.init_model(data, pca=pca, seed=0, **INIT_SETTINGS)
    return data, model, metadata


def test_retyped_sweeps_are_bit_identical(tiny_model):
    from jax_moseq.models import keypoint_slds

    from kpms_flow.kpms_patches import install_sweep_wrappers

    install_sweep_wrappers()
    patched = keypoint_slds.resample_model
    original = patched.__wrapped__
    assert original is not patched
    data, start, _ = tiny_model
    runs = []
    for sweep in (original, patched):
        model = start
        for _ in range(2):
            model = sweep(data, **model, ar_only=False, jitter=1e-3, parallel_message_passing=False)
        runs.append(model)
    for key in ("x", "z", "h", "v", "s"):
        assert np.array_equal(np.asarray(runs[0]["states"][key]), np.asarray(runs[1]["states"][key])), key
    assert np.array_equal(np.asarray(runs[0]["seed"]), np.asarray(runs[1]["seed"]))


@contextlib.contextmanager
def traces_counted():
    """A list that grows by one for each function JAX traces inside the block."""
    from jax._src import monitoring

    traced = []

    def on_duration(event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_trace_duration":
            traced.append(duration)

    monitoring.register_event_duration_secs_listener(on_duration)
    try:
        yield traced
    finally:
        monitoring.unregister_event_duration_listener(on_duration)


def test_a_fit_traces_its_sweep_once(tiny_model):
    """The first sweep's state (fresh from init_model: uncommitted arrays) and a later
    sweep's (committed) are re-typed alike, so the second sweep traces and compiles
    nothing: without that, every fit job compiled the whole sweep twice."""
    from jax_moseq.models import keypoint_slds

    from kpms_flow.kpms_patches import install_sweep_wrappers

    install_sweep_wrappers()
    data, start, _ = tiny_model
    settings = dict(ar_only=False, jitter=1e-3, parallel_message_passing=False)
    model = keypoint_slds.resample_model(data, **start, **settings)
    with traces_counted() as traced:
        keypoint_slds.resample_model(data, **model, **settings)
    # Fails without the inputs' re-typing (seen: the second sweep traced again).
    assert traced == [], f"the second sweep traced {len(traced)} functions again"


def test_applying_a_checkpoint_traces_its_sweep_once(tiny_model):
    """keypoint-moseq's apply_model on a model read from a checkpoint (NumPy arrays, its
    seed among them): only the first sweep traces. Without re-typing NumPy state the second
    sweep traced 259 functions again (~30 s of compilation per apply job on the CPU)."""
    import jax
    import keypoint_moseq as kpms
    from jax_moseq.models import keypoint_slds

    from kpms_flow.kpms_patches import install_sweep_wrappers

    install_sweep_wrappers()
    data, start, metadata = tiny_model
    checkpoint = jax.tree.map(lambda x: np.asarray(x) if isinstance(x, jax.Array) else x, start)
    patched, traced_per_sweep = keypoint_slds.resample_model, []
    with traces_counted() as traced:

        def counting(*args, **kwargs):
            before = len(traced)
            model = patched(*args, **kwargs)
            traced_per_sweep.append(len(traced) - before)
            return model

        keypoint_slds.resample_model = counting
        try:
            # Earlier tests in the same process (test_apply_batches) may have compiled these
            # shapes already: emptied caches make the first sweep trace whatever ran before.
            jax.clear_caches()
            one = {key: value[:1] for key, value in data.items()}
            kpms.apply_model(
                checkpoint, one, (metadata[0][:1], metadata[1][:1]), num_iters=3,
                save_results=False, parallel_message_passing=False, **INIT_SETTINGS,
            )
        finally:
            keypoint_slds.resample_model = patched
    assert len(traced_per_sweep) == 3 and traced_per_sweep[0] > 0
    assert traced_per_sweep[1:] == [0, 0], traced_per_sweep


def test_patch_assumptions_hold_for_the_installed_versions():
    """An upgrade of keypoint-moseq, jax-moseq or jax that breaks a patch fails here, by name."""
    from kpms_flow.kpms_patches import check_assumptions

    problems = check_assumptions()
    assert problems == [], "\n".join(problems)


def test_assumption_check_notices_a_broken_assumption(monkeypatch):
    from keypoint_moseq import fitting

    from kpms_flow.kpms_patches import check_assumptions

    monkeypatch.delattr(fitting, "plot_progress")
    problems = check_assumptions()
    assert any("plot_progress" in p and "patch 3" in p for p in problems), problems


NAMESPACE = """
import sys, types
{setup}
import keypoint_moseq as kpms
deferred = "keypoint_moseq.analysis" not in sys.modules and "panel" not in sys.modules
kpms.compute_moseq_df  # a name of analysis's: imports it
def ident(v):
    if isinstance(v, types.ModuleType):
        return "module " + v.__name__
    return f"{{type(v).__name__}} {{getattr(v, '__module__', None)}}.{{getattr(v, '__qualname__', None)}}"
print(deferred)
for key in sorted(vars(kpms)):
    if not key.startswith("__"):
        print(key, ident(vars(kpms)[key]))
"""


def test_keypoint_moseqs_analysis_is_imported_on_first_use_with_the_same_namespace():
    """Patch 5: after ``import kpms_flow``, importing keypoint-moseq leaves analysis (and panel)
    out until one of its names is used; the package then holds what a plain import holds."""
    import subprocess
    import sys

    def namespace(setup: str) -> list[str]:
        code = NAMESPACE.format(setup=setup)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return out.stdout.splitlines()

    patched, plain = namespace("import kpms_flow"), namespace("")
    assert patched[0] == "True", "keypoint_moseq.analysis or panel imported before first use"
    assert plain[0] == "False"
    assert len(patched) > 150 and patched[1:] == plain[1:]


def test_an_unknown_keypoint_moseq_init_is_imported_whole():
    """An __init__ without the one analysis line patch 5 leaves out: no split (the plain
    import), and the assumption check names the patch."""
    from kpms_flow.kpms_patches import ANALYSIS_IMPORT, _split_init

    source = f"from .io import *\n{ANALYSIS_IMPORT}from .calibration import noise_calibration\n"
    lean, bound_after = _split_init(source)
    assert ANALYSIS_IMPORT not in lean and {"noise_calibration"} <= bound_after
    assert _split_init(source.replace(ANALYSIS_IMPORT, "from .analysis import compute_stats_df\n")) is None
    assert _split_init(source + ANALYSIS_IMPORT) is None
