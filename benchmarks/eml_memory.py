"""Peak memory of the EML step: kpms_flow.selection.eml_scores against keypoint-moseq's
expected_marginal_likelihoods, for N = 4 and 8 models on the same checkpoints.

    .venv/bin/python benchmarks/eml_memory.py [--frames 100000] [--models 4 8]
        [--latent-dim 10] [--num-states 50] [--keypoints 8] [--keep DIR]

Writes 8 (the largest --models) synthetic checkpoints of one data set
(tests/synthetic_checkpoints.py: keypoint-moseq's layout and save function, random values
of valid kinds; one snapshot each, segments of 10,000 frames, format_data's largest) in a
scratch folder. Each measurement runs in a fresh Python process: it imports keypoint-moseq,
notes its resident memory (the baseline), computes the scores of the first N checkpoints
with one function, and reports its peak resident memory (``ru_maxrss``). Functions:
``keypoint-moseq`` (``expected_marginal_likelihoods``), ``kpms-flow`` (``eml_scores``,
default ``frames_per_call``: 100,000 frames per call of ``marginal_log_likelihood``) and
``kpms-flow-1seg`` (``eml_scores(frames_per_call=1)``: one segment per call). The table gives
the peak and the peak above the baseline (what the computation itself took, JIT
compilation included, which both functions pay alike), and the ratio keypoint-moseq /
kpms-flow of the latter. Both functions' scores are checked equal (rtol 1e-9).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys
sys.path.insert(0, {scripts!r})
import numpy as np
import keypoint_moseq as kpms
from kpms_flow.selection import eml_scores

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20

paths = {paths!r}
baseline = rss_mb()
if {which!r} == "keypoint-moseq":
    scores, errors = kpms.expected_marginal_likelihoods(checkpoint_paths=paths)
elif {which!r} == "kpms-flow":
    scores, errors = eml_scores(paths)
else:  # one segment per call of marginal_log_likelihood
    scores, errors = eml_scores(paths, frames_per_call=1)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"baseline_mb": baseline, "peak_mb": peak, "scores": list(map(float, scores))}}))
"""


def measure(which: str, paths: list[str]) -> dict:
    code = CHILD.format(scripts=str(ROOT / "scripts"), paths=paths, which=which)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000, help="frames in the data set")
    parser.add_argument("--models", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--num-states", type=int, default=50)
    parser.add_argument("--keypoints", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="write the checkpoints here (else a scratch folder)")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT / "scripts"))
    from synthetic_checkpoints import restart_checkpoints

    with tempfile.TemporaryDirectory(prefix="eml_memory_") as scratch:
        folder = args.keep or Path(scratch)
        half = args.frames // 2
        paths = [
            str(p)
            for p in restart_checkpoints(
                folder,
                max(args.models),
                iterations=(0,),
                model_kwargs={"latent_dim": args.latent_dim, "num_states": args.num_states},
                session_frames=(half, args.frames - half),
                keypoints=args.keypoints,
                seg_length=10_000,
            )
        ]
        print(
            f"{args.frames} frames, latent_dim {args.latent_dim}, {args.num_states} states, "
            f"{args.keypoints} keypoints; checkpoint {Path(paths[0]).stat().st_size / 2**20:.0f} MB"
        )
        print(f"{'N':>3} {'function':<15} {'baseline MB':>12} {'peak MB':>9} {'above MB':>9}")
        for n in args.models:
            results = {}
            for which in ("keypoint-moseq", "kpms-flow", "kpms-flow-1seg"):
                r = measure(which, paths[:n])
                r["above_mb"] = r["peak_mb"] - r["baseline_mb"]
                results[which] = r
                print(
                    f"{n:>3} {which:<15} {r['baseline_mb']:>12.0f} {r['peak_mb']:>9.0f} "
                    f"{r['above_mb']:>9.0f}"
                )
            import numpy as np

            for which in ("kpms-flow", "kpms-flow-1seg"):
                np.testing.assert_allclose(
                    results[which]["scores"], results["keypoint-moseq"]["scores"], rtol=1e-9
                )
                ratio = results["keypoint-moseq"]["above_mb"] / results[which]["above_mb"]
                print(f"    N={n}: memory above baseline, keypoint-moseq / {which} = {ratio:.1f}x")


if __name__ == "__main__":
    main()
