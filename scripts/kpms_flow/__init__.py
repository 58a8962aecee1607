"""kpms-flow: the library behind the Snakemake workflow.

Rule scripts in ``scripts/`` are thin wrappers; the logic lives here and is unit-tested
without Snakemake. Import keypoint_moseq before jax_moseq (it enables float64).
"""

__version__ = "0.1.0"
