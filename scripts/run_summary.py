"""Rule run_summary: the run's values as a table and JSON, and a short text for people."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from pathlib import Path

import pandas as pd

from kpms_flow.atomic import write_table, write_text
from kpms_flow.model import read_training_attrs
from kpms_flow.runtime import log_to
from kpms_flow.summary import (
    calibration_summary,
    duration_checks,
    format_summary,
    selection_checks,
    run_summary,
    session_details,
    summary_json,
    variance_at,
)

SELECTION_TABLES = ("eml", "pairwise", "stability", "convergence")
log = log_to(snakemake.log[0])  # noqa: F821
inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821

tables = {Path(f).stem: pd.read_csv(f) for f in inp.syllables}
syllables = {session: table["syllable"].to_numpy() for session, table in tables.items()}
# Names from the syllable table (config key syllable_table), where the CSVs carry them.
named = {
    int(s): str(n)
    for table in tables.values()
    if "syllable_name" in table
    for s, n in table[["syllable", "syllable_name"]].drop_duplicates().itertuples(index=False)
    if str(n) != str(s)
}
training = pd.read_csv(inp.training, sep="\t", keep_default_na=False)
used = training.loc[training["used_for_training"].astype(bool), "session"].tolist()
_, fps, _ = read_training_attrs(inp.data)
kappa = dict(p.kappa)
search, chosen_probes = {}, {}
for table in inp.kappa:
    row = pd.read_csv(table, sep="\t").iloc[0]
    kappa[row["stage"]] = float(row["kappa"])
    chosen_probes[row["stage"]] = row.to_dict()
    search[f"search_{row['stage']}"] = (
        f"{row['status']} in {row['rounds']} rounds, {row['probe_fits']} probe fits"
    )
final_fits = {}
for table in inp.fits:
    row = pd.read_csv(table, sep="\t").iloc[0]
    final_fits[row["stage"]] = row.to_dict()
truth = {Path(f).stem: pd.read_csv(f)["state"].to_numpy() for f in inp.ground_truth}
latent_dim = int(Path(inp.latent_dim).read_text())
qa = pd.read_csv(inp.qa, sep="\t", keep_default_na=False)
summary = run_summary(
    syllables,
    used,
    fps,
    latent_dim,
    kappa,
    qa,
    ground_truth=truth or None,
    variance_explained=variance_at(pd.read_csv(inp.variance, sep="\t"), latent_dim),
)
summary.update(search)
if inp.calibration:
    # The demo's generator writes its true noise model beside the true states.
    truth_params = inp.noise_truth[0] if inp.noise_truth else None
    summary.update(calibration_summary(inp.calibration, truth_params))
summary.update(duration_checks(summary, p.target_duration_ms, final_fits, chosen_probes))
for stage, status in [(s, summary.get(f"search_status_{s}")) for s in final_fits]:
    if status == "drifted":
        summary[f"search_{stage}"] += "; the final fit drifted out of the window"
if "eml" in inp.keys():
    summary.update(
        selection_checks(
            *(pd.read_csv(inp[name], sep="\t") for name in SELECTION_TABLES), p.target_duration_ms
        )
    )
if named:
    summary["syllable_names"] = ", ".join(f"{s} {named[s]}" for s in sorted(named))
sessions = session_details(qa, used)
write_table(out.table, pd.DataFrame([summary]))
write_text(out.json, summary_json(summary, sessions))
text = format_summary(summary, sessions)
if named:
    text = text.rstrip("\n") + f"\n  syllable names: {summary['syllable_names']}\n"
write_text(out.text, text)
log.info("\n%s", text)
