"""Config checks before any job runs (kpms_flow.config), against the real schema."""

from __future__ import annotations

import yaml

from conftest import ROOT
from kpms_flow.config import (
    anatomy_problems,
    coerce_numeric_strings,
    coerce_schema_integers,
    config_problems,
)

SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())


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
