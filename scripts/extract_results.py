"""Rule extract_results: training sessions' syllables from the final model.

Training sessions that QA excluded were not fitted; they get labels from the frozen
model through apply_model, like sessions outside the training set.
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from kpms_flow.runtime import start_jax_job

log, _ = start_jax_job(snakemake)  # noqa: F821

import tempfile
from pathlib import Path

import pandas as pd
from keypoint_moseq.io import save_hdf5

from kpms_flow.atomic import atomic_path
from kpms_flow.config import kpms_config
from kpms_flow.keypoints import read_session
from kpms_flow.model import apply_to_session, extract, read_training_attrs

inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821

bodyparts, _, _ = read_training_attrs(inp.data)
kcfg = kpms_config(p.model, bodyparts)
training = pd.read_csv(inp.training, sep="\t", keep_default_na=False)
excluded = training.loc[~training["used_for_training"], "session"].tolist()
clean = pd.read_csv(inp.clean_files, sep="\t", keep_default_na=False).set_index("session")["clean"]

with tempfile.TemporaryDirectory(prefix="kpms_flow_extract_") as scratch:
    fitted = Path(scratch, "fitted.h5")
    results = extract(inp.checkpoint, fitted)
    for session in excluded:
        log.warning("session %s was excluded from training: applying the model", session)
        applied = Path(scratch, f"{session}.h5")
        results.update(apply_to_session(inp.checkpoint, read_session(clean[session]), kcfg, p.num_iters, applied))
    with atomic_path(out[0]) as tmp:
        save_hdf5(str(tmp), results)
log.info("results for %d sessions (%d applied)", len(results), len(excluded))
