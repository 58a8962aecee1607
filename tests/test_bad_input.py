"""Bad input stops the workflow clearly (issue 7), and raw inputs are never modified.

Every case checks a non-zero exit, a message that names the file (or config key) and the
cause, and no partial output. Grouped so the suite stays quick:

* config and sessions-table mistakes: each case in-process in tests/test_config.py (the
  function Snakemake runs while parsing); here one real dry run per kind of failure;
* pose files that cannot be loaded: every case in-process on the function rule
  prepare_session runs, and one ``--keep-going`` run loading one case of each kind of
  failure at once, each load job failing on its own;
* data that load but cannot make a model (bodyparts that differ between sessions, no
  session left after QA, latent_dim too large, no frame rate for a target in ms): each from
  a copy of the complete demo run (``demo_reference``), rerunning only what changed;
* the ``kpms-flow-sessions`` CLI (no Snakemake: in the quick lane).

Raw inputs: the demo run's pose files hash as when they were first loaded; a slow test hashes
the inputs of a separate full run before and after it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, copy_run, merged, shared_pose, snakemake, write_demo_config, write_video
from kpms_flow.demo import generate_demo
from kpms_flow.formats import load_model_session
from kpms_flow.keypoints import InputError

SESSIONS_TSV = "config/demo_sessions.tsv"


def assert_stopped(proc: subprocess.CompletedProcess, *patterns: str) -> str:
    """Non-zero exit, and every pattern (a regex) in what the user sees."""
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"exited 0:\n{text[-3000:]}"
    for pattern in patterns:
        assert re.search(pattern, text), f"{pattern!r} not in the output:\n{text[-6000:]}"
    return text


def leftovers(workdir: Path) -> list[str]:
    """Half-written files: temporaries of atomic writes, fit work folders."""
    results = workdir / "results"
    if not results.exists():
        return []
    return sorted(
        str(p.relative_to(workdir)) for p in results.rglob("*") if p.name.endswith(".tmp") or p.name == "work"
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- config and sessions table
def demo_table(workdir: Path) -> pd.DataFrame:
    return pd.read_csv(workdir / SESSIONS_TSV, sep="\t", dtype=str, keep_default_na=False)


def unknown_format(workdir: Path):
    table = demo_table(workdir)
    table.loc[0, "format"] = "DeepLabCut"
    table.to_csv(workdir / SESSIONS_TSV, sep="\t", index=False)


def missing_pose_file(workdir: Path):
    table = demo_table(workdir)
    table.loc[0, "path"] = "pose/nowhere.h5"
    table.to_csv(workdir / SESSIONS_TSV, sep="\t", index=False)


# Every config and sessions-table case is checked in-process (tests/test_config.py, the
# function common.smk calls); one real dry run per kind of failure proves the wiring.
# kind -> (config changes, sessions-table edit, patterns on the console)
PARSE_FAILURES = {
    "config against its schema": (
        {"kapa": 1000, "qa": {"max_nan_fraction": 2}}, None,
        [r"invalid config \(every key is described in config/README\.md\):\n",
         r"config key 'kapa' is not a kpms-flow setting \(a typo\?\)",
         r"config key 'qa\.max_nan_fraction': 2 is greater than the maximum of 1"],
    ),
    "settings that contradict each other": (
        {"kappa_search": {"arhmm_log10_kappa": [18, 3]}}, None,
        [r"invalid config \(every key is described in config/README\.md\):\n",
         r"config: kappa_search\.arhmm_log10_kappa must increase, got \[18, 3\]"],
    ),
    "sessions table": (
        {}, unknown_format,
        [r"config/demo_sessions\.tsv row 1 \(session 'demo_01'\): unknown format 'DeepLabCut'",
         r"Write a sessions table with: kpms-flow-sessions"],
    ),
    # Snakemake's own check, after parsing: a row whose pose file does not exist.
    "pose file missing": (
        {}, missing_pose_file,
        [r"Missing input files for rule prepare_session(.|\n)*session=demo_01(.|\n)*pose/nowhere\.h5"],
    ),
}


@pytest.mark.workflow
@pytest.mark.parametrize("kind", list(PARSE_FAILURES))
def test_config_and_table_mistakes_stop_snakemake_before_anything_runs(tmp_path, kind):
    changes, edit_table, patterns = PARSE_FAILURES[kind]
    config_path = write_demo_config(tmp_path)
    config_path.write_text(yaml.safe_dump(merged(yaml.safe_load(config_path.read_text()), changes)))
    if edit_table is not None:
        edit_table(tmp_path)
    proc = snakemake(tmp_path, "-n", config=config_path, check=False, timeout=300)
    text = assert_stopped(proc, *patterns)
    assert "Failed validating" not in text  # not Snakemake's schema dump
    assert not (tmp_path / "results").exists(), "a failed parse wrote outputs"


@pytest.mark.workflow
def test_yaml_1e6_is_taken_as_the_number_meant(tmp_path):
    """YAML 1.1 reads 1e6 as a string: accepted as the number, and said so on the console."""
    config_path = write_demo_config(tmp_path)
    text = config_path.read_text()
    config_path.write_text(
        text + "\n".join(["", "fps: 3e1", "kappa_search:", "  enabled: false", "full_model:",
                          "  kappa: 1e3", "  num_iters: 3e0", ""])
    )
    assert yaml.safe_load(config_path.read_text())["full_model"]["kappa"] == "1e3"
    proc = snakemake(tmp_path, "-n", config=config_path)
    text = proc.stdout + proc.stderr
    assert "config: read full_model.kappa as a number (YAML had it as a string)" in text
    assert "config: read full_model.num_iters as an integer" in text
    assert "fit_full_model" in text


# ---------------------------------------------------------------- pose files that cannot be loaded
def dlc_table(path: Path) -> pd.DataFrame:
    return pd.read_hdf(path, key="df_with_missing")


def write_dlc(df: pd.DataFrame, path: Path) -> Path:
    df.to_hdf(path, key="df_with_missing", mode="w", format="table")
    return path


def made_files(folder: Path) -> dict[str, Path]:
    """Broken pose files made from a synthetic DeepLabCut session."""
    good = Path(generate_demo(folder / "demo", n_sessions=1, n_frames=400, n_heldout=0)["path"][0])
    df = dlc_table(good)
    files = {"good": good}
    files["extra_index"] = folder / "extra_index.csv"
    df.reset_index().to_csv(files["extra_index"])  # the stray column pandas adds
    files["corrupt"] = folder / "corrupt.h5"
    files["corrupt"].write_bytes(good.read_bytes()[:4096])
    nan = df.copy()
    nan.loc[:, nan.columns.get_level_values("coords") != "likelihood"] = np.nan
    files["all_nan"] = write_dlc(nan, folder / "all_nan.h5")
    lost = df.copy()
    lost.loc[:, [c for c in lost.columns if c[1] == "neck" and c[2] != "likelihood"]] = np.nan
    files["nan_bodypart"] = write_dlc(lost, folder / "nan_bodypart.h5")
    files["short"] = write_dlc(df.iloc[:50], folder / "short.h5")
    files["folder"] = folder / "folder.h5"
    files["folder"].mkdir()
    files["video_25fps"] = write_video(folder / "video_25fps.avi", n_frames=400, fps=25.0)
    nwb = ROOT / ".." / "shared" / "data" / "pose" / SHARED["nwb"]
    if nwb.exists():  # an NWB as an older ndx-pose (0.1) may write it: no 'nodes', no skeleton
        files["nwb_no_nodes"] = folder / "no_nodes.nwb"
        shutil.copy(nwb, files["nwb_no_nodes"])
        with h5py.File(files["nwb_no_nodes"], "r+") as f:
            del f["processing/behavior/PoseEstimation/nodes"]
    return files


# session -> (path key or shared file, format, animal, fps, video, expected message); the
# message patterns all start with the file's name.
SHARED = {
    "mabe": "mabe_no_likelihood/EGS8X2MN4SSUGFWAV976.h5",
    "sleap_old": "sleap_flies/analysis_example_predictions.analysis.h5",
    "two_keys": "deepof_topview/testDLC_h5_table_madlc.901frames_2keys.h5",
    "ethome": "ethome_social_mice/e3v813a-20210610T122332-122642DLC_dlcrnetms5_pilot_studySep24shuffle1_100000_el_filtered.csv",
    "boris": "ethome_social_mice/e3v813a-20210610T122332-122642_reencode.BORIS_annotations.csv",
    "deepof": "deepof_topview/testDLC_h5_table.h5",
    "nwb": "dlc_openfield_mouse/m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000.nwb",
}
# made_files' files derived from a shared file (made only when it is there)
DERIVED_FROM_SHARED = {"nwb_no_nodes": "nwb"}
LOAD_CASES = {
    "no_likelihood": ("mabe", "deeplabcut", "", "", "",
                      r"no 'likelihood' coordinate .* would silently load this file with the wrong keypoints"),
    "sleap_no_scores": ("sleap_old", "sleap", "", "", "", r"has no 'point_scores' dataset"),
    "h5_two_keys": ("two_keys", "deeplabcut", "", "", "",
                    r"h5 holds 2 pandas keys \(/test, /tracks\) and 2 of them are DeepLabCut tables"),
    "extra_index_column": ("extra_index", "deeplabcut", "", "", "", r"extra index column"),
    "animal_not_named": ("ethome", "deeplabcut", "", "", "",
                         r"holds 2 animals \('adult', 'juvenile'\); name one in the 'animal' column"),
    "animal_not_in_file": ("ethome", "deeplabcut", "mouse3", "", "",
                           r"has no animal 'mouse3'; the file holds: 'adult', 'juvenile'"),
    "not_pose_tracking": ("boris", "deeplabcut", "", "", "", r"is a BORIS behaviour-event export"),
    "wrong_extension": ("extra_index", "sleap", "", "", "",
                        r"extension '\.csv' is not read by keypoint-moseq's sleap loader"),
    "corrupt_file": ("corrupt", "deeplabcut", "", "", "", r"is not a pandas HDF5 table"),
    "not_a_file": ("folder", "deeplabcut", "", "", "", r"is not a regular file"),
    "anatomy_not_in_data": ("deepof", "deeplabcut", "", "", "",
                            r"missing required bodyparts neck, nose; available: Nose, Left_ear"),
    "all_nan_session": ("all_nan", "deeplabcut", "", "", "", r"all coordinates are missing \(NaN\)"),
    "all_nan_bodypart": ("nan_bodypart", "deeplabcut", "", "", "",
                         r"bodyparts neck are missing \(NaN\) in every frame"),
    "too_short": ("short", "deeplabcut", "", "", "",
                  r"50 frames, fewer than the minimum 100 \(config key 'min_frames'\): too short"),
    "fps_disagrees": ("good", "deeplabcut", "", "30", "video_25fps",
                      r"the video .*video_25fps\.avi says 25 fps but the sessions table says 30"),
    # the cause and what to do, then the library's own text one line below
    "nwb_without_skeleton": ("nwb_no_nodes", "nwb", "", "", "",
                             r"this NWB file's pose estimation has no skeleton.* Re-export the NWB[^\n]*\n"
                             r"  keypoint-moseq's nwb loader failed: ValueError: This PoseEstimation object "
                             r"has no Skeleton"),
}
# Loaded fine: multi-animal DeepLabCut, whose bodyparts keypoint-moseq returns as a set.
GOOD_CASES = {"multi_animal_adult": ("ethome", "deeplabcut", "adult", "", "")}


# The cases also loaded as Snakemake jobs, one of each kind of failure: the job's plumbing
# (the console line naming the file, the job's log, no partial output) is the same for every
# case, so the others are checked in-process on the function the job runs (below). A known
# keypoint-moseq mis-load, a file that is no pose table, a validation failure, a video's
# frame rate, a library error quoted under its cause.
AS_JOBS = ["no_likelihood", "corrupt_file", "all_nan_bodypart", "fps_disagrees", "nwb_without_skeleton"]
# What the load run's config (anterior nose, posterior neck, defaults otherwise) gives rule
# prepare_session.
LOAD_PARAMS = dict(bodyparts=None, use_bodyparts=None, required_bodyparts=["neck", "nose"], min_frames=100)


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    """(made files, every source found: key -> path, case -> why it is skipped)."""
    files = {key: str(path) for key, path in made_files(tmp_path_factory.mktemp("bad_inputs")).items()}
    available = dict(files)
    for key, relative in SHARED.items():
        path = (ROOT / ".." / "shared" / "data" / "pose" / relative).resolve()
        if path.exists():
            available[key] = str(path)
    skipped = {
        case: f"{SHARED[DERIVED_FROM_SHARED.get(source, source)]} not in ../shared/data/pose"
        for case, (source, *_) in {**LOAD_CASES, **GOOD_CASES}.items()
        if source not in available
    }
    return files, available, skipped


@pytest.mark.parametrize("case", list(LOAD_CASES))
def test_unloadable_pose_file_is_refused_naming_it_first(bad_inputs, case):
    files, available, skipped = bad_inputs
    if case in skipped:
        pytest.skip(skipped[case])
    source, fmt, animal, fps, video, pattern = LOAD_CASES[case]
    with pytest.raises(InputError) as error:
        load_model_session(
            available[source], fmt, case, animal=animal, fps=float(fps) if fps else None,
            video=files.get(video, ""), **LOAD_PARAMS,
        )  # fmt: skip
    assert re.match(rf"{re.escape(available[source])}[^\n]*{pattern}", str(error.value)), str(error.value)


@pytest.fixture(scope="module")
def load_run(bad_inputs, tmp_path_factory):
    """One run loading the AS_JOBS cases and the good one (each its own job; --keep-going)."""
    files, available, skipped = bad_inputs
    workdir = tmp_path_factory.mktemp("bad_load")
    rows = []
    for session in AS_JOBS + list(GOOD_CASES):
        source, fmt, animal, fps, video, *_ = {**LOAD_CASES, **GOOD_CASES}[session]
        if session not in skipped:
            rows.append({"session": session, "path": available[source], "format": fmt, "animal": animal,
                         "fps": fps, "train": "true", "video": files.get(video, "")})
    (workdir / "config").mkdir()
    pd.DataFrame(rows).to_csv(workdir / "config" / "sessions.tsv", sep="\t", index=False)
    config = workdir / "config" / "config.yaml"
    config.write_text(yaml.safe_dump({
        "sessions": "config/sessions.tsv",
        "anterior_bodyparts": ["nose"],
        "posterior_bodyparts": ["neck"],
    }))
    targets = [f"results/keypoints/{row['session']}.h5" for row in rows]
    proc = snakemake(workdir, "--keep-going", "--", *targets, config=config, check=False, timeout=900)
    return workdir, proc, skipped


@pytest.mark.workflow
@pytest.mark.parametrize("case", AS_JOBS)
def test_unloadable_pose_file_stops_its_job(load_run, case):
    workdir, proc, skipped = load_run
    if case in skipped:
        pytest.skip(skipped[case])
    source, *_, pattern = LOAD_CASES[case]
    rows = pd.read_csv(workdir / "config" / "sessions.tsv", sep="\t", keep_default_na=False)
    path = rows.set_index("session").loc[case, "path"]
    # The console line the rule script prints, with the file named first.
    assert_stopped(proc, rf"ERROR: {re.escape(path)}[^\n]*{pattern}")
    log = (workdir / "results" / "logs" / "prepare_session" / f"{case}.log").read_text()
    assert re.search(pattern, log)
    assert not (workdir / "results" / "sessions" / case).exists() or not any(
        (workdir / "results" / "sessions" / case).iterdir()
    ), "a failed load left files"
    assert not leftovers(workdir)


@pytest.mark.workflow
def test_multi_animal_bodyparts_keep_the_header_order(load_run):
    """keypoint-moseq returns a multi-animal table's bodyparts as a set; ours follow the header."""
    workdir, _, skipped = load_run
    if "multi_animal_adult" in skipped:
        pytest.skip(skipped["multi_animal_adult"])
    path = shared_pose(SHARED["ethome"])
    header = pd.read_csv(path, header=[0, 1, 2, 3], index_col=0, nrows=1)
    adult = header.xs("adult", axis=1, level="individuals")
    order = list(dict.fromkeys(adult.columns.get_level_values("bodyparts")))
    with h5py.File(workdir / "results" / "keypoints" / "multi_animal_adult.h5") as f:
        assert [b.decode() for b in f["bodyparts"][()]] == order
        x = f["coordinates"][:, :, 0]
    table = pd.read_csv(path, header=[0, 1, 2, 3], index_col=0)
    for i, bodypart in enumerate(order):
        expected = table.xs(("adult", bodypart, "x"), axis=1, level=(1, 2, 3)).iloc[:, 0].to_numpy()
        np.testing.assert_array_equal(x[:, i], np.where(np.isfinite(expected), expected, np.nan))


# ---------------------------------------------------------------- data that cannot make a model
def variant(reference: Path, target: Path, config_changes: dict | None = None, table_edit=None):
    """A copy of the complete demo run with a changed config and/or sessions table."""
    copy_run(reference, target)
    config = target / "config" / "test.yaml"
    config.write_text(yaml.safe_dump(merged(yaml.safe_load(config.read_text()), config_changes or {})))
    if table_edit is not None:
        table = demo_table(target)
        table = table_edit(table, target)
        table.to_csv(target / SESSIONS_TSV, sep="\t", index=False)
    return config


def add_session_without(bodypart: str):
    def edit(table, workdir):
        df = dlc_table(workdir / table.loc[1, "path"])
        lost = workdir / "demo" / "data" / "extra" / "demo_06.h5"
        lost.parent.mkdir(parents=True)
        write_dlc(df.drop(columns=bodypart, level="bodyparts"), lost)
        row = dict(table.iloc[1], session="demo_06", path=str(lost.relative_to(workdir)))
        return pd.concat([table, pd.DataFrame([row])], ignore_index=True)

    return edit


@pytest.mark.workflow
def test_bodyparts_that_differ_between_sessions_stop_the_training_data(demo_reference, tmp_path):
    config = variant(demo_reference, tmp_path, table_edit=add_session_without("hips"))
    proc = snakemake(tmp_path, "--", "results/data/data.h5", config=config, check=False)
    assert_stopped(
        proc,
        r"ERROR: demo/data/extra/demo_06\.h5: bodyparts differ from demo/data/pose/demo_01\S*\.h5: "
        r"missing \['hips'\], extra \[\]",
    )
    assert not (tmp_path / "results" / "data" / "data.h5").exists()
    assert not leftovers(tmp_path)


@pytest.mark.workflow
def test_no_training_session_left_after_qa(demo_reference, tmp_path):
    config = variant(demo_reference, tmp_path, {"qa": {"max_nan_fraction": 0.0}})
    proc = snakemake(tmp_path, "--", "results/data/data.h5", config=config, check=False)
    assert_stopped(
        proc,
        r"ERROR: no training session passes QA \(config key 'qa'\): demo_01: nan_fraction "
        r"0\.\d+ > max_nan_fraction 0\.0; demo_02: nan_fraction",
    )
    # The training_set rule decides and fails: its output (the reference run's, removed by
    # Snakemake before the job ran) is not written, and nothing downstream of it ran.
    assert not (tmp_path / "results" / "qa" / "training_set.tsv").exists()
    data = tmp_path / "results" / "data" / "data.h5"
    assert data.stat().st_mtime_ns == (demo_reference / "results" / "data" / "data.h5").stat().st_mtime_ns
    assert not leftovers(tmp_path)


@pytest.mark.workflow
def test_latent_dim_larger_than_the_data_allow(demo_reference, tmp_path):
    config = variant(demo_reference, tmp_path, {"latent_dim": 40})
    proc = snakemake(tmp_path, "--", "results/pca/latent_dim.txt", config=config, check=False)
    assert_stopped(
        proc,
        r"ERROR: config key 'latent_dim' is 40 but the data allow at most \d+ principal components",
    )
    for output in ("pca.p", "latent_dim.txt", "variance.tsv"):  # rule prepare_training_data's PCA outputs
        assert not (tmp_path / "results" / "pca" / output).exists(), output
    assert not leftovers(tmp_path)


@pytest.mark.workflow
def test_target_in_ms_without_a_frame_rate(demo_reference, tmp_path):
    def two_sessions_without_fps(table, _):
        table = table.iloc[:2].copy()
        table["fps"] = ""  # DeepLabCut files carry no frame rate either,
        table["video"] = ""  # and without a video nothing gives one
        return table

    config = variant(demo_reference, tmp_path, table_edit=two_sessions_without_fps)
    target = "results/search/arhmm/round0/decision.tsv"
    proc = snakemake(tmp_path, "--", target, config=config, check=False)
    assert_stopped(
        proc,
        r"ERROR: config key 'kappa_search\.target_duration_ms' is in milliseconds but the "
        r"training sessions' frame rate is unknown: give fps in the sessions table or config key 'fps'",
    )
    assert not (tmp_path / target).exists()
    assert not leftovers(tmp_path)


# ---------------------------------------------------------------- raw inputs are never modified
@pytest.mark.workflow
def test_raw_inputs_unchanged_since_they_were_loaded(demo_reference):
    """The complete demo run: each pose file hashes as when prepare_session first read it
    (the demo's files are made inside the run, so that is the earliest hash there is)."""
    for keypoints in sorted((demo_reference / "results" / "keypoints").glob("*.h5")):
        with h5py.File(keypoints) as f:
            source = demo_reference / f.attrs["source_path"]
            assert sha256(source) == f.attrs["source_sha256"], source
        assert source.stat().st_mtime_ns < keypoints.stat().st_mtime_ns


SMALL = {
    "anterior_bodyparts": ["nose"],
    "posterior_bodyparts": ["tailbase"],
    "trans_hypparams": {"num_states": 10},
    "kappa_search": {"enabled": False},
    "arhmm": {"kappa": 1.0e4, "num_iters": 3},
    "full_model": {"kappa": 1.0e3, "num_iters": 3},
    "apply": {"num_iters": 3},
    "save_every_n_iters": 2,
}


@pytest.mark.workflow
@pytest.mark.slow
def test_raw_inputs_hash_the_same_before_and_after_a_full_run(tmp_path):
    """Pose files that exist before the run (and their videos) are opened read-only."""
    table = generate_demo(tmp_path / "raw", n_sessions=2, n_frames=400, n_heldout=0)
    table["path"] = [str(Path(p).relative_to(tmp_path)) for p in table["path"]]
    table["group"] = ""  # one group: keypoint-moseq's group transitions need >1 session per group
    (tmp_path / "config").mkdir()
    table.to_csv(tmp_path / "config" / "sessions.tsv", sep="\t", index=False)
    config = tmp_path / "config" / "config.yaml"
    config.write_text(yaml.safe_dump({"sessions": "config/sessions.tsv", **SMALL}))
    raw = sorted(p for p in (tmp_path / "raw").rglob("*") if p.is_file())
    before = {p: (sha256(p), p.stat().st_mtime_ns) for p in raw}
    snakemake(tmp_path, "--resources", "gpu=2", config=config)
    assert (tmp_path / "results" / "summary.txt").exists()
    assert {p: (sha256(p), p.stat().st_mtime_ns) for p in raw} == before


# ---------------------------------------------------------------- the sessions CLI
SESSIONS_CLI = str(Path(sys.executable).with_name("kpms-flow-sessions"))


def test_sessions_cli_refuses_bad_input_and_writes_nothing(tmp_path):
    pose = Path(generate_demo(tmp_path / "demo", n_sessions=1, n_frames=50, n_heldout=0)["path"][0])
    twin = pose.with_suffix(".hdf5")  # same stem, so the same session name
    shutil.copy(pose, twin)
    (tmp_path / "empty").mkdir()
    output = tmp_path / "sessions.tsv"
    cases = [
        ([str(tmp_path / "nowhere" / "*.h5")], r"nowhere/\*\.h5: pattern matches no pose files"),
        ([str(tmp_path / "missing.h5")], r"missing\.h5: no such file or folder"),
        ([str(tmp_path / "empty")], r"empty: folder holds no files with extension"),
        ([str(pose.parent)], r"duplicate session names.*\n.*demo_01DLC\S*: .*\.h5, .*\.hdf5"),
        ([str(pose), "--format", "DeepLabCut"], r"unknown format 'DeepLabCut' \(names are case-sensitive"),
    ]
    for args, pattern in cases:
        proc = subprocess.run([SESSIONS_CLI, *args, "--output", str(output)], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert re.search(r"kpms-flow-sessions: error: (.|\n)*" + pattern, proc.stderr), (pattern, proc.stderr)
        assert not output.exists()
