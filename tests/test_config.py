"""Config and sessions-table checks before any job runs (kpms_flow.config), against the
real schemas, in-process: ``load_workflow_config`` is what workflow/rules/common.smk calls
while Snakemake parses the workflow (tests/test_bad_input.py proves that wiring with one
real ``snakemake -n`` per kind of failure)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, TEST_CONFIG, merged, write_demo_config
from kpms_flow.config import (
    WorkflowConfigError,
    anatomy_problems,
    coerce_numeric_strings,
    coerce_schema_integers,
    config_problems,
    load_workflow_config,
)

SCHEMAS = ROOT / "workflow" / "schemas"
SCHEMA = yaml.safe_load((SCHEMAS / "config.schema.yaml").read_text())
SESSIONS_TSV = "config/demo_sessions.tsv"


def test_yaml_exponent_strings_become_the_numbers_meant():
    config = yaml.safe_load("arhmm: {kappa: 1e6, num_iters: 5e1}\nkappa_search: {target_duration_ms: [3e2, 400]}\n"
                            "sessions: config/sessions.tsv\n")
    assert config["arhmm"]["kappa"] == "1e6"  # what YAML 1.1 gives
    converted = coerce_numeric_strings(config)
    assert sorted(converted) == ["arhmm.kappa", "arhmm.num_iters", "kappa_search.target_duration_ms.0"]
    assert config["arhmm"]["kappa"] == 1e6
    assert config["sessions"] == "config/sessions.tsv"
    # num_iters must be an int for range(): whole floats become ints where the schema says so.
    assert coerce_schema_integers(config, SCHEMA) == ["arhmm.num_iters"]
    assert config["arhmm"] == {"kappa": 1e6, "num_iters": 50}
    assert type(config["arhmm"]["num_iters"]) is int and type(config["arhmm"]["kappa"]) is float
    assert config_problems(config, SCHEMA) == []


def test_every_schema_problem_is_reported_with_its_key():
    config = {"sessions": "s.tsv", "kapa": 1, "arhmm": {"num_iters": "ten", "kappa": -1},
              "qa": {"max_nan_fraction": 2}, "latent_dim": "five", "watchdog": {"timeout_s": -5}}
    problems = config_problems(config, SCHEMA)
    assert len(problems) == 6
    text = "\n".join(problems)
    for fragment in [
        "config key 'kapa' is not a kpms-flow setting (a typo?)",
        "config key 'arhmm.kappa': -1 is less than or equal to the minimum of 0",
        "config key 'arhmm.num_iters': 'ten' is not of type 'integer'",
        "config key 'qa.max_nan_fraction': 2 is greater than the maximum of 1",
        "config key 'latent_dim': 'five' is not allowed (Number of latent dimensions",
        "config key 'watchdog.timeout_s': -5 is less than the minimum of 0",
    ]:
        assert fragment in text, text
    nested = config_problems({"nan_retry": {"max_retry": 3}}, SCHEMA)
    assert nested == [
        "config key 'nan_retry.max_retry' is not a kpms-flow setting (a typo?); known keys here: "
        "max_retries, jitter_factor"
    ]


def test_anatomy_keys_must_agree():
    assert anatomy_problems({"anterior_bodyparts": ["nose"], "posterior_bodyparts": ["tail"]}) == []
    problems = anatomy_problems({
        "bodyparts": ["nose", "neck", "tail"],
        "use_bodyparts": ["nose", "tail", "tail", "hips"],
        "anterior_bodyparts": ["snout"],
        "posterior_bodyparts": ["tail"],
    })
    assert problems == [
        "config key 'use_bodyparts' names ['hips'], not in config key 'bodyparts' ['nose', 'neck', 'tail']",
        "config key 'anterior_bodyparts' names ['snout'], not in config key 'bodyparts' ['nose', 'neck', 'tail']",
        "config key 'anterior_bodyparts' names ['snout'], not in config key 'use_bodyparts' "
        "['nose', 'tail', 'tail', 'hips']",
        "config key 'use_bodyparts' lists ['tail'] more than once",
    ]


def test_test_config_is_the_demo_with_tiny_iterations():
    demo = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    test = yaml.safe_load(TEST_CONFIG.read_text())
    differ = {key for key in demo.keys() | test.keys() if demo.get(key) != test.get(key)}
    assert differ == {"arhmm", "full_model", "apply", "save_every_n_iters", "kappa_search", "restarts"}
    for stage in ("arhmm", "full_model", "apply"):
        assert test[stage]["num_iters"] < demo[stage]["num_iters"]
    assert 2 <= test["restarts"]["num_restarts"] < demo["restarts"]["num_restarts"]


# ---------------------------------------------------------------- load_workflow_config
@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh working directory with the test config and the demo's sessions table; the
    current directory, as for Snakemake (the table's path is relative to it)."""
    write_demo_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def read_test_config(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "config" / "test.yaml").read_text())


def load_error(config: dict) -> str:
    """The message of the one error ``load_workflow_config`` raises for ``config``."""
    with pytest.raises(WorkflowConfigError) as error:
        load_workflow_config(config, SCHEMAS)
    return str(error.value)


def test_the_test_config_loads_with_defaults_and_an_indexed_table(workdir):
    config = read_test_config(workdir)
    notes = []
    loaded, sessions = load_workflow_config(config, SCHEMAS, note=notes.append)
    assert loaded is config and notes == []
    assert config["kappa_search"]["probes_per_round"] == 2  # the file's value
    assert config["kappa_search"]["target_duration_ms"] == [300, 400]  # the schema's default
    assert config["qa"]["max_nan_fraction"] == SCHEMA["properties"]["qa"]["properties"]["max_nan_fraction"]["default"]
    assert sessions.index.tolist() == sessions["session"].tolist() == [f"demo_{i:02d}" for i in range(1, 6)]
    assert sessions["train"].tolist() == [True] * 4 + [False]


def test_yaml_exponent_strings_are_noted(workdir):
    config = read_test_config(workdir)
    config.update(fps="3e1", full_model={"kappa": "1e3", "num_iters": 3.0})
    notes = []
    load_workflow_config(config, SCHEMAS, note=notes.append)
    assert sorted(notes) == [
        "config: read fps as a number (YAML had it as a string)",
        "config: read full_model.kappa as a number (YAML had it as a string)",
        "config: read full_model.num_iters as an integer",
    ]
    assert config["full_model"] == {"kappa": 1e3, "num_iters": 3}


def demo_table(workdir: Path) -> pd.DataFrame:
    return pd.read_csv(workdir / SESSIONS_TSV, sep="\t", dtype=str, keep_default_na=False)


def with_table(edit):
    """A sessions-table case: ``edit(table)`` changes the demo table in place."""

    def apply(workdir: Path, config: dict) -> dict:
        table = demo_table(workdir)
        edit(table)
        table.to_csv(workdir / SESSIONS_TSV, sep="\t", index=False)
        return config

    return apply


def with_config(**changes):
    def apply(workdir: Path, config: dict) -> dict:
        return merged(config, changes)

    return apply


def set_cell(row: int, column: str, value: str):
    def edit(table):
        table.loc[row, column] = value

    return edit


PARSE_CASES = {
    "unknown format (case)": (
        with_table(set_cell(0, "format", "DeepLabCut")),
        r"config/demo_sessions\.tsv row 1 \(session 'demo_01'\): unknown format 'DeepLabCut' "
        r"\(names are case-sensitive: did you mean 'deeplabcut'\?\)",
    ),
    "duplicate session names": (
        with_table(set_cell(1, "session", "demo_01")),
        r"config/demo_sessions\.tsv: duplicate session names: demo_01 \(rows 1, 2\)",
    ),
    "sessions table missing": (
        with_config(sessions="config/nope.tsv"),
        r"config/nope\.tsv: sessions table not found\n"
        r"Write a sessions table with: kpms-flow-sessions 'path/to/pose/\*\.h5' --output config/nope\.tsv",
    ),
    "required column missing": (
        with_table(lambda t: t.pop("path")),
        r"config/demo_sessions\.tsv: missing required column\(s\) path",
    ),
    "fps not a number": (
        with_table(set_cell(2, "fps", "thirty")),
        r"row 3 \(session 'demo_03'\): fps 'thirty' is not a number",
    ),
    "train not a boolean": (
        with_table(set_cell(0, "train", "maybe")),
        r"row 1 \(session 'demo_01'\): train 'maybe' is not a boolean",
    ),
    "unsafe session name": (
        with_table(set_cell(0, "session", "demo 01")),
        r"row 1 \(session 'demo 01'\): session name is not safe for file paths",
    ),
    "no training session": (
        with_table(lambda t: t.__setitem__("train", "false")),
        r"config/demo_sessions\.tsv: no session has train: true",
    ),
    "inverted kappa bounds": (
        with_config(kappa_search={"arhmm_log10_kappa": [18, 3]}),
        r"config: kappa_search\.arhmm_log10_kappa must increase, got \[18, 3\]",
    ),
    "inverted full-model offsets": (
        with_config(kappa_search={"full_model_log10_kappa_offset": [0, -4.5]}),
        r"config: kappa_search\.full_model_log10_kappa_offset must increase, got \[0, -4\.5\]",
    ),
    "probe longer than its stage": (
        with_config(kappa_search={"num_iters": 10}),
        r"kappa_search\.num_iters \(10\) exceeds arhmm\.num_iters \(3\)",
    ),
    "posterior not in use_bodyparts": (
        with_config(use_bodyparts=["nose", "neck", "spine"]),
        r"config key 'posterior_bodyparts' names \['tailbase'\], not in config key 'use_bodyparts'",
    ),
    "use_bodyparts not in bodyparts": (
        with_config(bodyparts=["nose", "neck", "tailbase"], use_bodyparts=["nose", "hips", "tailbase"]),
        r"config key 'use_bodyparts' names \['hips'\], not in config key 'bodyparts'",
    ),
}


@pytest.mark.parametrize("case", list(PARSE_CASES))
def test_config_and_table_mistakes_are_refused(workdir, case):
    change, pattern = PARSE_CASES[case]
    config = change(workdir, read_test_config(workdir))
    message = load_error(config)
    assert re.search(pattern, message), message
    assert not (workdir / "results").exists()


# Schema problems are all reported at once, each with its key.
SCHEMA_CASES = {
    "wrong type": ({"arhmm": {"num_iters": "ten"}},
                   r"config key 'arhmm\.num_iters': 'ten' is not of type 'integer'"),
    "out of range": ({"qa": {"max_nan_fraction": 2}},
                     r"config key 'qa\.max_nan_fraction': 2 is greater than the maximum of 1"),
    "unknown key (typo)": ({"kapa": 1000}, r"config key 'kapa' is not a kpms-flow setting \(a typo\?\)"),
    "latent_dim neither a number nor auto": ({"latent_dim": "five"},
                                             r"config key 'latent_dim': 'five' is not allowed"),
    "negative fps": ({"fps": -30}, r"config key 'fps': -30 is less than or equal to the minimum of 0"),
    "watchdog off by a negative time": ({"watchdog": {"timeout_s": -1}},
                                        r"config key 'watchdog\.timeout_s': -1 is less than the minimum of 0"),
}


def test_every_schema_problem_and_the_table_problem_in_one_error(workdir):
    config = read_test_config(workdir)
    for change, _ in SCHEMA_CASES.values():
        config = merged(config, change)
    with_table(set_cell(0, "train", "maybe"))(workdir, config)
    message = load_error(config)
    assert message.startswith("invalid config (every key is described in config/README.md):\n  ")
    for case, (_, pattern) in SCHEMA_CASES.items():
        assert re.search(pattern, message), (case, message)
    assert len(message.splitlines()) == 1 + len(SCHEMA_CASES) + 2  # + the table's two lines
    assert re.search(r"\nconfig/demo_sessions\.tsv row 1 \(session 'demo_01'\): train 'maybe'", message)
    assert "Failed validating" not in message  # not Snakemake's schema dump


def test_a_table_the_sessions_schema_refuses_names_the_table(workdir, monkeypatch):
    """read_sessions_table checks more than the schema does; the schema stays a backstop."""
    import kpms_flow.sessions

    table = kpms_flow.sessions.read_sessions_table(SESSIONS_TSV)
    table.loc[0, "group"] = 7  # not a string, which nothing but the schema checks
    monkeypatch.setattr(kpms_flow.sessions, "read_sessions_table", lambda path: table)
    message = load_error(read_test_config(workdir))
    assert message.startswith("config/demo_sessions.tsv: Error validating row 0 of data frame."), message
    assert "7 is not of type 'string'" in message
