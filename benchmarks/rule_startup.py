"""Start-up time of every rule script (process start to its first line of work), and what
each rule's whole job imports.

    .venv/bin/python benchmarks/rule_startup.py [--repeats 5] [--tree DIR] [--rules R ...]
    .venv/bin/python benchmarks/rule_startup.py --jobs DIR [--job-repeats 1]

Each rule's script (from ``script:`` in workflow/rules/*.smk) is run the way Snakemake runs
it: a fresh Python with Snakemake's preamble (unpickling a ``snakemake`` object, importing
``snakemake.logging`` and ``snakemake.iocontainers``), then the script's own top-level
statements up to its first line of work: imports, ``sys.path.insert``, ``log_to``,
``supervise`` (watchdog off: the time is the fitting child's), ``configure_jax``,
``use_cpu_for_plots`` and unpacking of ``snakemake.*``. The process then records the wall
time since it was started, its CPU time (user + system) and which heavy libraries are
loaded, and exits. The work itself is not run (it needs real inputs); where the work calls
keypoint-moseq, that import is paid then, and the README says so.

Reference lines: ``python -c pass``, the preamble alone, and ``import keypoint_moseq``
(what a rule paid when it imported keypoint-moseq up front).

``--jobs DIR`` also runs each rule's whole job once more (``--job-repeats``): DIR gets a
tiny demo run (the tests' iteration counts; ``snakemake --skip-script-cleanup`` keeps the
job scripts Snakemake writes, .snakemake/scripts/tmp*.<script>.py) unless it holds one;
then one job script per rule is rerun there as Snakemake runs it, and its wall time, CPU
time (user + system, its children included) and the heavy libraries loaded when it ends are
recorded. The watched fitting rules (``supervise``) are left out: their time is the fit.
DIR is scratch: the reruns rewrite its outputs, so Snakemake would rerun much there.

``--tree DIR`` measures another checkout (e.g. ``git archive <commit> | tar -x -C DIR``),
for before/after tables. Prints a table (median of --repeats) and writes
benchmarks/results/rule_startup.tsv with the load average of the run.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import pickle
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["keypoint_moseq", "jax_moseq", "jax", "sklearn", "matplotlib", "scipy", "cv2", "pynwb"]
SETUP_CALLS = {"log_to", "supervise", "configure_jax", "use_cpu_for_plots", "insert"}

# The probe: Snakemake's preamble (snakemake/script/__init__.py, PythonScript), the script's
# start-up statements, then a report written to a file (log_to redirects stdout and stderr).
PROBE = """\
import sys; import pickle; snakemake = pickle.loads({pickled!r}); from snakemake.logging import logger; from snakemake.iocontainers import Snakemake
exec(compile({startup!r}, {script!r}, "exec"))
import json as _json, resource as _resource, sys as _sys, time as _time
_wall = _time.time()
_usage = _resource.getrusage(_resource.RUSAGE_SELF)
with open({report!r}, "w") as _handle:
    _json.dump({{"wall_end": _wall, "cpu": _usage.ru_utime + _usage.ru_stime,
                "loaded": [m for m in {heavy!r} if m in _sys.modules]}}, _handle)
"""


def rule_scripts(tree: Path) -> dict[str, Path]:
    """{rule name: script path} from ``script:`` directives in workflow/rules/*.smk."""
    found = {}
    for smk in sorted((tree / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        pattern = r"^(?:rule|checkpoint) (\w+):(.*?)(?=^(?:rule|checkpoint) |\Z)"
        for name, body in re.findall(pattern, text, re.M | re.S):
            script = re.search(r'script:\s*\n\s*"([^"]+)"', body)
            if script:
                found[name] = (smk.parent / script.group(1)).resolve()
    return found


def _is_setup(node: ast.stmt) -> bool:
    def setup_call(value) -> bool:
        if not isinstance(value, ast.Call):
            return False
        func = value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name in SETUP_CALLS

    def from_snakemake(value) -> bool:
        if isinstance(value, ast.Tuple):
            return all(from_snakemake(v) for v in value.elts)
        while isinstance(value, (ast.Attribute, ast.Subscript)):
            value = value.value
        return isinstance(value, ast.Name) and value.id == "snakemake"

    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return True
    if isinstance(node, ast.Expr):
        return isinstance(node.value, ast.Constant) or setup_call(node.value)
    if isinstance(node, ast.Assign):
        return setup_call(node.value) or from_snakemake(node.value)
    return False


def startup_code(script: Path) -> tuple[str, int]:
    """The script's top-level statements before its first line of work, and that line."""
    tree = ast.parse(script.read_text())
    body = []
    for node in tree.body:
        if not _is_setup(node):
            return ast.unparse(ast.Module(body=body, type_ignores=[])), node.lineno
        body.append(node)
    return ast.unparse(ast.Module(body=body, type_ignores=[])), 0


def pickled_snakemake(scriptdir: Path, log: Path) -> bytes:
    from snakemake.iocontainers import (
        InputFiles,
        Log,
        OutputFiles,
        Params,
        ResourceList,
        Snakemake,
        Wildcards,
    )

    wildcards = Wildcards(fromdict={"session": "s1", "stage": "arhmm", "round": "1", "probe": "0"})
    # Watchdog off: the fitting scripts then start up in one process, as their child does.
    config = {"watchdog": {"timeout_s": 0}}
    smk = Snakemake(InputFiles(), OutputFiles(), Params(), wildcards, 1, ResourceList(),
                    Log([str(log)]), config, "probe", None, str(scriptdir))
    return pickle.dumps(smk, protocol=4)


def time_probe(code: str, scratch: Path) -> dict:
    """Run ``code`` in a fresh Python; wall from just before the start, CPU, loaded modules."""
    probe = scratch / "probe.py"
    report = scratch / "report.json"
    probe.write_text(code)
    report.unlink(missing_ok=True)
    # No compile cache written into the repository; JAX settings as the rules get them.
    env = dict(os.environ, KPMS_FLOW_JAX_CACHE="", MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="")
    env.pop("PYTHONPATH", None)  # the script's own sys.path.insert decides which kpms_flow
    start = time.time()
    proc = subprocess.run([sys.executable, str(probe)], cwd=scratch, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0 or not report.exists():
        log = scratch / "rule.log"
        detail = log.read_text()[-3000:] if log.exists() else ""
        raise RuntimeError(f"probe failed ({proc.returncode}):\n{proc.stderr[-3000:]}\n{detail}")
    result = json.loads(report.read_text())
    return {"wall": result["wall_end"] - start, "cpu": result["cpu"], "loaded": result["loaded"]}


def reference_code(name: str, scratch: Path, pickled: bytes) -> str:
    report = str(scratch / "report.json")
    startup = {"python": "", "preamble": "", "import keypoint_moseq": "import keypoint_moseq"}[name]
    code = PROBE.format(pickled=pickled, startup=startup, script="<reference>", report=report,
                        heavy=HEAVY)
    if name == "python":  # no preamble: the interpreter alone
        code = code.split("\n", 1)[1]
    return code


# A job script as Snakemake runs it (python .snakemake/scripts/tmp*.py), reporting at exit.
JOB_WRAPPER = """\
import atexit, json, runpy, sys
_report, _script = sys.argv[1], sys.argv[2]

def _done():
    with open(_report, "w") as handle:
        json.dump({"loaded": [m for m in %r if m in sys.modules]}, handle)

atexit.register(_done)
sys.argv = [_script]
runpy.run_path(_script, run_name="__main__")
""" % (HEAVY,)

# The tests' tiny iteration counts (tests/conftest.py): plumbing, not science.
TINY = {
    "arhmm": {"kappa": 1.0e4, "num_iters": 3},
    "full_model": {"kappa": 1.0e3, "num_iters": 3},
    "apply": {"num_iters": 3},
    "save_every_n_iters": 2,
    "kappa_search": {"num_iters": 2, "probes_per_round": 2, "max_rounds": 2},
}


def demo_run(tree: Path, workdir: Path) -> None:
    """A complete tiny demo run in ``workdir`` whose job scripts are kept."""
    import shutil

    import yaml

    if (workdir / "results" / "summary.tsv").exists() and (workdir / ".snakemake" / "scripts").is_dir():
        return
    workdir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((tree / "config" / "demo.yaml").read_text())
    config.update(TINY)
    (workdir / "config").mkdir(exist_ok=True)
    shutil.copy(tree / "config" / "demo_sessions.tsv", workdir / "config" / "demo_sessions.tsv")
    (workdir / "config" / "startup.yaml").write_text(yaml.safe_dump(config))
    cmd = [str(Path(sys.executable).with_name("snakemake")), "-s", str(tree / "Snakefile"),
           "-d", str(workdir), "--cores", "2", "--resources", "gpu=2",
           "--configfile", "config/startup.yaml", "--skip-script-cleanup"]
    env = dict(os.environ, KPMS_FLOW_JAX_CACHE=str(ROOT / ".snakemake" / "kpms-flow-jax-cache"))
    env.pop("PYTHONPATH", None)
    print(f"demo run in {workdir} ...", flush=True)
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the demo run failed:\n{proc.stderr[-6000:]}")


def job_scripts(workdir: Path, scripts: dict[str, Path]) -> dict[str, Path]:
    """{rule: one of its kept job scripts}, for the rules not run under the watchdog."""
    kept = sorted((workdir / ".snakemake" / "scripts").glob("tmp*.py"))
    found = {}
    for rule, script in scripts.items():
        if "supervise(" in script.read_text():
            continue
        mine = [k for k in kept if k.name.endswith("." + script.name)]
        if mine:
            found[rule] = mine[0]
    return found


def time_job(job: Path, workdir: Path, scratch: Path) -> dict:
    import resource

    wrapper, report = scratch / "job_wrapper.py", scratch / "job_report.json"
    wrapper.write_text(JOB_WRAPPER)
    report.unlink(missing_ok=True)
    env = dict(os.environ, KPMS_FLOW_JAX_CACHE=str(ROOT / ".snakemake" / "kpms-flow-jax-cache"))
    env.pop("PYTHONPATH", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    proc = subprocess.run([sys.executable, str(wrapper), str(report), str(job)], cwd=workdir,
                          env=env, capture_output=True, text=True)
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or not report.exists():
        raise RuntimeError(f"{job} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "loaded": json.loads(report.read_text())["loaded"]}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout to measure")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rules", nargs="*", help="only these rules")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference lines")
    parser.add_argument("--jobs", type=Path, help="also time whole jobs of a tiny demo run kept in this folder")
    parser.add_argument("--job-repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "rule_startup.tsv")
    args = parser.parse_args(argv)
    tree = args.tree.resolve()

    scripts = rule_scripts(tree)
    if args.rules:
        missing = set(args.rules) - set(scripts)
        if missing:
            parser.error(f"no script rule named {', '.join(sorted(missing))} in {tree}")
        scripts = {r: scripts[r] for r in args.rules}
    load_before = load_average()
    rows = []
    with tempfile.TemporaryDirectory(prefix="kpms_flow_startup_") as scratch:
        scratch = Path(scratch)
        pickled = pickled_snakemake(tree / "scripts", scratch / "rule.log")
        probes = {}
        if not args.no_reference:
            for name in ("python", "preamble", "import keypoint_moseq"):
                probes[name] = (reference_code(name, scratch, pickled), "(reference)", 0)
        for rule, script in scripts.items():
            startup, first_work = startup_code(script)
            code = PROBE.format(pickled=pickled, startup=startup, script=str(script),
                                report=str(scratch / "report.json"), heavy=HEAVY)
            probes[rule] = (code, script.name, first_work)
        # Repeats interleaved, so that a burst of load hits every rule alike.
        times = {name: [] for name in probes}
        for _ in range(args.repeats):
            for name, (code, _, _) in probes.items():
                times[name].append(time_probe(code, scratch))
        jobs = {}
        if args.jobs:
            workdir = args.jobs.resolve()
            demo_run(tree, workdir)
            for rule, job in job_scripts(workdir, scripts).items():
                jobs[rule] = [time_job(job, workdir, scratch) for _ in range(args.job_repeats)]
        for name, (_, script, first_work) in probes.items():
            runs = times[name]
            job = jobs.get(name)
            rows.append({
                "rule": name,
                "script": script,
                "first_work_line": first_work,
                "wall_s": statistics.median(r["wall"] for r in runs),
                "cpu_s": statistics.median(r["cpu"] for r in runs),
                "wall_min_s": min(r["wall"] for r in runs),
                "wall_max_s": max(r["wall"] for r in runs),
                "loaded": ",".join(runs[-1]["loaded"]) or "-",
                "job_wall_s": statistics.median(r["wall"] for r in job) if job else None,
                "job_cpu_s": statistics.median(r["cpu"] for r in job) if job else None,
                "job_loaded": (",".join(job[-1]["loaded"]) or "-") if job else None,
            })
    load_after = load_average()

    import pandas as pd

    table = pd.DataFrame(rows)
    table["repeats"] = args.repeats
    table["tree"] = str(tree)
    table["load_before"] = load_before
    table["load_after"] = load_after
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, sep="\t", index=False, float_format="%.3f")
    print(f"{tree}: median of {args.repeats}; load average before {load_before}, after {load_after}")
    columns = ["rule", "wall_s", "cpu_s", "wall_min_s", "wall_max_s", "loaded"]
    if args.jobs:
        columns += ["job_wall_s", "job_cpu_s", "job_loaded"]
    with pd.option_context("display.width", 250, "display.max_colwidth", 60):
        print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
