"""Shared fixtures: the project root, the real-data folder and a Snakemake runner."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kpms_flow.dryrun import job_counts
from kpms_flow.plan import deep_update

ROOT = Path(__file__).resolve().parents[1]
SHARED_POSE = (ROOT / ".." / "shared" / "data" / "pose").resolve()
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SLURM_CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"

# XLA builds the tests' JAX programs with LLVM's -O0 (every fit, in this process and in the
# Snakemake jobs it starts, which inherit the environment). Their fits run a few sweeps, so
# compiling is most of their CPU time: -O0 takes 0.81 of the CPU of a cold fit-and-apply
# chain (benchmarks/README.md, "Test suite: XLA's default build against -O0"), 25:33 -> 23:07
# for the suite on a clean clone. The numbers then differ from users' default build
# in the last bits (fused multiply-adds), so the one test that compares labels with bare
# keypoint-moseq's, test_equivalence, runs both with the default build (users_environment).
TEST_XLA_FLAG = "--xla_backend_optimization_level=0"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAG}".strip()


def users_environment() -> dict:
    """This process's environment with XLA's default optimisation, as users run."""
    flags = os.environ.get("XLA_FLAGS", "").replace(TEST_XLA_FLAG, "").strip()
    env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    return dict(env, XLA_FLAGS=flags) if flags else env


# The workflow tests' config: the demo with tiny iteration counts (plumbing and conventions,
# not science). TINY: the keys in which it differs from the demo, for tests on other data.
TEST_CONFIG = ROOT / "config" / "test.yaml"


def _tiny_settings() -> dict:
    demo = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    test = yaml.safe_load(TEST_CONFIG.read_text())
    return {key: value for key, value in test.items() if demo.get(key) != value}


TINY = _tiny_settings()
# One fit chain: the tests on other data check loading and fitting, not model selection.
TINY["restarts"] = {"num_restarts": 1}


def shared_pose(*parts) -> Path:
    """A file under ../shared/data/pose, or skip the test with the reason."""
    if not SHARED_POSE.is_dir():
        pytest.skip(f"{SHARED_POSE} not found: real-data tests need ../shared beside the project")
    path = SHARED_POSE.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found in the shared data folder")
    return path


# ``base`` with ``changes`` applied key by key into nested sections, as a new dict
# (Snakemake's --configfile merge; the plan command merges configs with it too).
merged = deep_update


def write_demo_config(workdir: Path, **overrides) -> Path:
    """``config/test.yaml`` and the demo's sessions table in a fresh working directory.

    ``overrides`` replace top-level keys of the config (whole sections, not merged).
    """
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config.update(overrides)
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config" / "demo_sessions.tsv", workdir / "config" / "demo_sessions.tsv")
    path = workdir / "config" / "test.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(
    workdir: Path, *args, config: Path | None = None, check=True, timeout=1500, env: dict | None = None
):
    """Run the real Snakemake on the project's Snakefile in ``workdir`` (in ``env``, default
    this process's environment)."""
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2"]
    if config is not None:
        cmd += ["--configfile", str(config)]
    cmd += list(args)
    env = dict(env or os.environ, KPMS_FLOW_JAX_CACHE=str(ROOT / ".snakemake" / "kpms-flow-jax-cache"))
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-5000:]}\n"
            f"{proc.stderr[-8000:]}"
        )
    return proc


def dry_run_jobs(workdir: Path, config: Path, *args) -> dict[str, int]:
    """Rule -> job count from the job stats table of ``snakemake -n``."""
    proc = snakemake(workdir, "-n", *args, config=config)
    return job_counts(proc.stdout + proc.stderr)


def tiny_keypoints(out: Path, n_sessions: int = 2, n_frames: int = 300):
    """Small demo sessions loaded as keypoint-moseq takes them: coordinates, confidences,
    bodyparts (for fits on the CPU in seconds, outside Snakemake)."""
    from kpms_flow.demo import generate_demo
    from kpms_flow.formats import load_session

    table = generate_demo(out, n_sessions=n_sessions, n_frames=n_frames, n_heldout=0)
    coordinates, confidences = {}, {}
    for row in table.itertuples():
        kp = load_session(row.path, "deeplabcut", row.session)
        coordinates[kp.session], confidences[kp.session] = kp.coordinates, kp.confidences
    return coordinates, confidences, list(kp.bodyparts)


def _run_root(tmp_path_factory) -> Path:
    """The temporary folder of this test run, shared by its pytest-xdist workers."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


def built_once(tmp_path_factory, name: str, build) -> Path:
    """``build(folder)`` run once per test run, whatever the number of pytest-xdist workers.

    The workers of one run share the parent of their base temporary folders: the first
    worker to ask builds under a file lock while the others wait for it, and a build that
    failed is retried by the next one to ask (so every test using it reports the failure).
    """
    root = _run_root(tmp_path_factory)
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def demo_reference(tmp_path_factory) -> Path:
    """One complete, uninterrupted demo run (tiny iterations) shared by the workflow tests.

    Built through the SLURM profile on the test cluster where one can run here (root), so
    the suite's one full run of config/test.yaml is also its cluster run (tests/test_slurm.py
    reads its accounting from ``SACCT_ROWS``), and locally otherwise. Tests must not modify
    it: copy it with ``copy_run`` first. KPMS_FLOW_DEMO_REFERENCE names a completed run of
    config/test.yaml to use instead (to rerun one workflow test quickly).
    """
    if os.environ.get("KPMS_FLOW_DEMO_REFERENCE"):
        return Path(os.environ["KPMS_FLOW_DEMO_REFERENCE"])

    def build(workdir):
        config = write_demo_config(workdir)
        if slurm_unavailable():
            snakemake(workdir, "--resources", "gpu=2", config=config)
            return
        with running_slurm_cluster(tmp_path_factory) as env:
            run_on_slurm_cluster(workdir, config, env)
            (workdir / SACCT_ROWS).write_text(json.dumps(sacct_rows(env)))

    return built_once(tmp_path_factory, "demo_reference", build)


@pytest.fixture(scope="session")
def uninterrupted(demo_reference, tmp_path_factory):
    """(last iteration, labels) of the demo's longer full-model fit run without interruption:
    what every interrupted copy of it (tests/fit_interruptions.py) must end with."""
    from fit_interruptions import TARGET, final_labels, longer_fit

    def build(workdir):
        config = longer_fit(demo_reference, workdir)
        snakemake(workdir, "--resources", "gpu=2", "--", TARGET, config=config)

    return final_labels(built_once(tmp_path_factory, "uninterrupted", build))


@pytest.fixture(scope="session")
def fresh_dry_run_output(tmp_path_factory) -> str:
    """What ``snakemake -n`` prints in a fresh directory with the test config."""

    def build(workdir):
        proc = snakemake(workdir, "-n", config=write_demo_config(workdir))
        (workdir / "dry_run.txt").write_text(proc.stdout + proc.stderr)

    return (built_once(tmp_path_factory, "fresh", build) / "dry_run.txt").read_text()


@pytest.fixture(scope="session")
def fresh_dry_run(fresh_dry_run_output) -> dict[str, int]:
    """Rule -> job count of ``snakemake -n`` in a fresh directory with the test config."""
    return job_counts(fresh_dry_run_output)


SLURM_PROFILE = ROOT / "profiles" / "slurm"
SACCT_ROWS = "sacct.json"  # beside results/ in a run made on the test cluster


def slurm_unavailable() -> str | None:
    """Why the SLURM test cluster (tests/slurm/cluster.sh) cannot run here, or None."""
    if os.geteuid() != 0:
        return "the SLURM test cluster needs root (apt-get, daemons)"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return "no slurm-wlm and no apt-get to install it"
    return None


@contextlib.contextmanager
def running_slurm_cluster(tmp_path_factory):
    """A real one-node SLURM cluster (tests/slurm/cluster.sh) while the block runs: the
    environment that reaches it (SLURM_CONF)."""
    # One cluster at a time on this machine, also across pytest-xdist workers (its daemons
    # listen on fixed ports); the lock is released when the cluster is stopped.
    lock = open(_run_root(tmp_path_factory) / "slurm_cluster.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    state = None
    try:
        subprocess.run([str(SLURM_CLUSTER), "install"], check=True, timeout=900)
        state = tmp_path_factory.mktemp("slurm")
        started = subprocess.run(
            [str(SLURM_CLUSTER), "start", str(state)], timeout=300, capture_output=True, text=True
        )
        assert started.returncode == 0, f"cluster.sh start failed:\n{started.stdout}\n{started.stderr}"
        # Job states every 5 s at most: with the plugin's backoff (up to 180 s) the demo's run
        # on this cluster waited 9 to 35 s at each step for jobs that had ended.
        yield dict(
            os.environ, SLURM_CONF=str(state / "etc" / "slurm.conf"), KPMS_FLOW_SLURM_STATUS_MAX_S="5"
        )
    finally:
        # Only the daemons this fixture started, by their pid files.
        if state is not None:
            subprocess.run([str(SLURM_CLUSTER), "stop", str(state)], timeout=120)
        lock.close()


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """The SLURM test cluster for one test module, or a skip where it cannot run."""
    if reason := slurm_unavailable():
        pytest.skip(reason)
    with running_slurm_cluster(tmp_path_factory) as env:
        yield env


def run_on_slurm_cluster(workdir: Path, config: Path, env: dict) -> None:
    """The whole workflow through ``--profile profiles/slurm``, unchanged, on the test cluster."""
    cmd = [
        "timeout", "-k", "30", "1500",  # the plugin can hang past SIGTERM (notes)
        SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
        "--profile", str(SLURM_PROFILE), "--configfile", str(config),
        "--cores", "2",  # the per-submission limit: this node has 2 CPUs
        "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-keep-successful-logs",
    ]
    env = dict(env, KPMS_FLOW_JAX_CACHE=str(ROOT / ".snakemake" / "kpms-flow-jax-cache"))
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-8000:]


def sacct_rows(env) -> list[dict]:
    """Every job the cluster ran in the last week (job, partition, tres, state, comment)."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-a", "--starttime=now-7days", "-o", "JobID,Partition,AllocTRES,State,Comment"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    keys = ["job", "partition", "tres", "state", "comment"]
    return [dict(zip(keys, line.split("|", 4))) for line in out.splitlines() if line]


def local_rules() -> set[str]:
    """The Snakefile's localrules: bookkeeping Snakemake runs itself, never a cluster job."""
    text = (ROOT / "Snakefile").read_text()
    block = text.split("\nlocalrules:\n", 1)[1].split("\n\n", 1)[0]
    return {name.strip().rstrip(",") for name in block.splitlines() if name.strip()}


def rule_blocks() -> dict[str, str]:
    """Rule name -> its text, for every rule of workflow/rules/*.smk."""
    blocks = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=(?:rule|checkpoint|use rule) )", smk.read_text()):
            match = re.match(r"(?:rule|checkpoint) (\w+):|use rule \w+ as (\w+)", block)
            if match:
                blocks[match.group(1) or match.group(2)] = block
    return blocks


def copy_run(source: Path, target: Path) -> Path:
    """Copy a completed run (outputs, mtimes and Snakemake's metadata) to mutate it."""
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    return target


def write_video(path: Path, n_frames: int, fps: float = 25.0) -> Path:
    """A tiny real video file (OpenCV) for frame-rate tests."""
    import cv2
    import numpy as np

    fourcc = "MJPG" if path.suffix == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (32, 24))
    assert writer.isOpened()
    for i in range(n_frames):
        writer.write(np.full((24, 32, 3), (i * 20) % 255, np.uint8))
    writer.release()
    return path


# Modules whose time is mostly waiting: on SLURM's time-limit check and an accounting outage
# (test_slurm_faults), on a 45 s watchdog timeout (test_fit_recovery). Both use the reference.
WAITING_MODULES = ("test_slurm_faults", "test_fit_recovery")


def pytest_collection_modifyitems(config, items):
    """`slow` tests (minutes each) run only when asked for: KPMS_FLOW_SLOW=1 or -m slow.

    Under pytest-xdist (``-n 3 --dist loadscope``, pyproject.toml) each module is one unit of
    work, so its fixtures (most are whole Snakemake runs) are built once; units go out in
    this order: the SLURM routing module (it asks first for the shared reference run, which
    is made on the test cluster and is the longest), the other modules that run Snakemake
    without the reference (so the other workers are busy meanwhile instead of waiting for
    it), the modules that use it, those that mostly wait first (WAITING_MODULES: the SLURM
    fault run, which needs the one test cluster the reference's build holds, and the local
    hang test), so that the other workers' CPU work overlaps their waits, then the quick
    modules, which fill the workers' last minutes. In a clean-clone run with these two
    last they ran side by side for the suite's final 2.5 minutes at 60 to 80 % CPU.
    (``--dist loadgroup`` would group both SLURM modules, but pytest 9.2 broke it:
    pytest-xdist issue 1386.)
    """
    if hasattr(config, "workerinput"):
        runs_snakemake = {item.module for item in items if item.get_closest_marker("workflow")}
        uses_reference = {item.module for item in items if "demo_reference" in item.fixturenames}

        def rank(item) -> int:
            name = item.module.__name__
            if name == "test_slurm" and item.module in runs_snakemake:
                return 0
            if name in WAITING_MODULES:
                return 2
            if item.module in uses_reference:
                return 3
            return 1 if item.module in runs_snakemake else 4

        items.sort(key=rank)
    if os.environ.get("KPMS_FLOW_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with KPMS_FLOW_SLOW=1 ./run test (or -m slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# The quick lane (-m "not workflow") runs no Snakemake: a test (or a fixture it sets up,
# whatever its scope) that starts the snakemake executable without the `workflow` marker
# fails, so a missing marker cannot slow the quick lane unnoticed.
_POPEN = subprocess.Popen
_running: dict[str, pytest.Item | None] = {"item": None}


class _PopenMarkedSnakemakeOnly(_POPEN):
    def __init__(self, args, *more, **kwargs):
        item = _running["item"]
        single = isinstance(args, (str, bytes, os.PathLike))
        words = os.fsdecode(args).split() if single else [os.fsdecode(a) for a in args]
        if item is not None and "workflow" not in item.keywords and any(
            Path(word).name == "snakemake" for word in words
        ):
            raise AssertionError(f"{item.nodeid} runs snakemake: mark it @pytest.mark.workflow")
        super().__init__(args, *more, **kwargs)


def pytest_configure(config):
    subprocess.Popen = _PopenMarkedSnakemakeOnly


def pytest_unconfigure(config):
    subprocess.Popen = _POPEN


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _running["item"] = item
    try:
        return (yield)
    finally:
        _running["item"] = None
