"""kpms-flow: the library behind the Snakemake workflow.

Rule scripts in ``scripts/`` are thin wrappers; the logic lives here and is unit-tested
without Snakemake. Import keypoint_moseq before jax_moseq (it enables float64).

Importing this package makes a later ``import keypoint_moseq`` leave its notebook-statistics
module (``analysis``, which imports panel) until one of its names is used: 1.8 s less CPU in
every job that imports keypoint-moseq (:mod:`kpms_flow.kpms_patches`, patch 5).
"""

from .kpms_patches import import_analysis_on_first_use

__version__ = "0.1.0"

import_analysis_on_first_use()
