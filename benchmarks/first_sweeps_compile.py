"""How much a full-model fit compiles: a tiny in-process fit (2 demo sessions of 300 frames,
latent_dim 3, 10 states, 3 sweeps) with the persistent compile cache in CACHE_DIR, printing
JAX's compile and cache counters and each sweep's time (the progress bar).

    .venv/bin/python benchmarks/first_sweeps_compile.py OUT_DIR CACHE_DIR   # empty CACHE_DIR: cold
    .venv/bin/python benchmarks/first_sweeps_compile.py OUT_DIR2 CACHE_DIR  # again: warm

Compare checkouts with ``git stash`` or another tree on ``sys.path`` (benchmarks/README.md,
"Full-model sweeps").
"""
import sys, time, logging
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import keypoint_moseq as kpms
import jax
from jax._src import monitoring
events = {}
def on_event(name, **kw):
    events[name] = events.get(name, 0) + 1
def on_dur(name, dur, **kw):
    events[name + ':s'] = events.get(name + ':s', 0) + dur
monitoring.register_event_listener(on_event)
monitoring.register_event_duration_secs_listener(on_dur)
jax.config.update("jax_compilation_cache_dir", sys.argv[2])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
from pathlib import Path
import yaml, shutil
from kpms_flow.config import kpms_config
from kpms_flow.demo import generate_demo
from kpms_flow.fitting import FitSpec, init_arhmm, run_fit
from kpms_flow.formats import load_session
from kpms_flow.kpms_patches import install_sweep_wrappers
install_sweep_wrappers()
out = Path(sys.argv[1]); shutil.rmtree(out, ignore_errors=True)
table = generate_demo(out / "demo", n_sessions=2, n_frames=300, n_heldout=0)
train = [load_session(row.path, "deeplabcut", row.session) for row in table.itertuples()]
schema = yaml.safe_load(open(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
props = schema["properties"]
config = {k: s["default"] for k, s in props.items() if "default" in s}
for section in ("ar_hypparams", "trans_hypparams", "obs_hypparams", "cen_hypparams", "error_estimator"):
    config[section] = {k: v["default"] for k, v in props[section]["properties"].items()}
config.update(anterior_bodyparts=["nose"], posterior_bodyparts=["tailbase"])
config["trans_hypparams"]["num_states"] = 10
kcfg = kpms_config(config, train[0].bodyparts, latent_dim=3)
data, metadata = kpms.format_data({kp.session: kp.coordinates for kp in train}, {kp.session: kp.confidences for kp in train}, **kcfg)
pca = kpms.fit_pca(**data, **kcfg)
t = time.time()
spec = FitSpec(work_dir=out / "work", output=out / "checkpoint.h5", num_iters=3, ar_only=False, fingerprint="x", save_every_n_iters=1)
run_fit(spec, data, metadata, lambda: (init_arhmm(data, pca, kcfg, 1e4, 0, 30.0), 0))
print("fit s", round(time.time() - t, 1))
for k, v in sorted(events.items()):
    if 'cache' in k or 'compil' in k: print(k, round(v, 2) if isinstance(v, float) else v)
