"""Read Snakemake's dry-run output (``snakemake -n``): used by tests and benchmarks."""

from __future__ import annotations

import re


def job_counts(text: str) -> dict[str, int]:
    """Rule -> number of jobs from the "Job stats" table; {} when nothing is to be done."""
    if "Nothing to be done" in text or "Job stats:" not in text:
        return {}
    jobs = {}
    for line in text.split("Job stats:", 1)[1].splitlines():
        match = re.match(r"^(\w+)\s+(\d+)\s*$", line.strip())
        if match and match.group(1) != "total":
            jobs[match.group(1)] = int(match.group(2))
        if line.strip().startswith("total"):
            break
    return jobs
