"""Full-model sweep time with and without kpms_flow.kpms_patches (re-typing the state).

    .venv/bin/python benchmarks/sweep_retyping.py [--frames 600] [--sweeps 4]
    mkdir -p /tmp/before && git archive 4ce620d | tar -x -C /tmp/before   # another checkout:
    .venv/bin/python benchmarks/sweep_retyping.py --tree /tmp/before

Runs each variant in its own process (the fix patches jax-moseq in place) on a synthetic
demo session and prints, per sweep, its wall time, how many functions JAX traced and its
seconds of XLA compilation (no persistent cache: every compilation is counted), and a
checksum of the latent states (equal checksums: the fix changes no number).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, time, numpy as np
sys.path.insert(0, {scripts!r})
import os; os.environ["KPMS_FLOW_JAX_CACHE"] = ""
import keypoint_moseq as kpms, jax
from jax._src import monitoring
from jax_moseq.models import keypoint_slds
counts = {{"trace": 0, "compile_s": 0.0}}
def on_duration(event, seconds, **kwargs):
    if event == "/jax/core/compile/jaxpr_trace_duration":
        counts["trace"] += 1
    elif event == "/jax/core/compile/backend_compile_duration":
        counts["compile_s"] += seconds
monitoring.register_event_duration_secs_listener(on_duration)
from kpms_flow.demo import generate_demo
from kpms_flow.formats import load_session
if {patched}:
    from kpms_flow.kpms_patches import install_sweep_wrappers
    install_sweep_wrappers()
table = generate_demo({out!r}, n_sessions=1, n_frames={frames}, n_heldout=0)
kp = load_session(table.path[0], "deeplabcut", "s")
data, _ = kpms.format_data({{"s": kp.coordinates}}, {{"s": kp.confidences}}, bodyparts=kp.bodyparts, use_bodyparts=kp.bodyparts)
idx = dict(anterior_idxs=np.array([0]), posterior_idxs=np.array([6]))
pca = kpms.fit_pca(**data, **idx)
model = kpms.init_model(data, pca=pca, seed=0, **idx,
    ar_hypparams=dict(latent_dim=3, nlags=3, S_0_scale=0.01, K_0_scale=10.0),
    trans_hypparams=dict(num_states=25, gamma=1e3, alpha=5.7, kappa=1e3),
    obs_hypparams=dict(sigmasq_0=0.1, sigmasq_C=0.1, nu_sigma=1e5, nu_s=5),
    cen_hypparams=dict(sigmasq_loc=0.5), error_estimator=dict(slope=-0.5, intercept=0.25))
for i in range({sweeps}):
    t, before = time.time(), dict(counts)
    model = keypoint_slds.resample_model(data, **model, ar_only=False, jitter=1e-3, parallel_message_passing=False)
    jax.block_until_ready(model["states"]["x"])
    print(f"{label}\tsweep {{i}}\t{{time.time() - t:.2f}} s\t{{counts['trace'] - before['trace']}} traced\t"
          f"{{counts['compile_s'] - before['compile_s']:.1f}} s compiling\tchecksum {{float(np.asarray(model['states']['x']).sum()):.12g}}", flush=True)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--sweeps", type=int, default=4)
    parser.add_argument("--tree", type=Path, help="also the patches of this checkout")
    args = parser.parse_args()
    variants = [("original", False, ROOT), ("patched", True, ROOT)]
    if args.tree:
        variants.append((f"patched ({args.tree})", True, args.tree.resolve()))
    for label, patched, tree in variants:
        with tempfile.TemporaryDirectory() as out:
            code = CHILD.format(scripts=str(tree / "scripts"), patched=patched, out=out,
                                frames=args.frames, sweeps=args.sweeps, label=label)
            load_before = os.getloadavg()[0]
            subprocess.run([sys.executable, "-c", code], check=True, stderr=subprocess.DEVNULL)
            # The machine is shared: the sweep times mean little without the load.
            print(f"{label}\tload average (1 min) before "
                  f"{load_before:.2f}, after {os.getloadavg()[0]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
