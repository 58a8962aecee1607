"""Config helpers: YAML pitfalls, and the keypoint-moseq config built from ours."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .keypoints import InputError

# YAML 1.1 (PyYAML) reads 1e6 and 1.0e6 as strings; only 1.0e+6 is a float.
_FLOAT_STRING = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def coerce_numeric_strings(config, path: str = "") -> list[str]:
    """Turn strings such as ``"1e6"`` into the numbers the user meant, in place.

    Returns the dotted keys that were converted so the caller can say so.
    """
    converted = []
    items = config.items() if isinstance(config, dict) else enumerate(config)
    for key, value in list(items):
        dotted = f"{path}.{key}" if path else str(key)
        if isinstance(value, str) and _FLOAT_STRING.match(value.strip()):
            config[key] = float(value)
            converted.append(dotted)
        elif isinstance(value, (dict, list)):
            converted += coerce_numeric_strings(value, dotted)
    return converted


def coerce_schema_integers(config, schema, path: str = "") -> list[str]:
    """Turn whole floats (``num_iters: 1e3`` read as 1000.0) into ints where the schema
    wants an integer, in place: JSON Schema accepts 1000.0 as an integer, range() does not.

    Returns the dotted keys that were converted.
    """
    converted = []
    properties = schema.get("properties", {})
    for key, value in list(config.items()) if isinstance(config, dict) else []:
        spec = properties.get(key, {})
        dotted = f"{path}.{key}" if path else str(key)
        kinds = spec.get("type", [])
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if "integer" in kinds and isinstance(value, float) and value.is_integer():
            config[key] = int(value)
            converted.append(dotted)
        elif isinstance(value, dict):
            converted += coerce_schema_integers(value, spec, dotted)
    return converted


def config_problems(config, schema) -> list[str]:
    """Every way ``config`` breaks ``schema``, one short line per key.

    Snakemake's own ``validate`` reports only the first problem, and an unknown key with
    the whole schema printed after it; this names each offending key first.
    """
    from jsonschema.validators import validator_for

    validator = validator_for(schema)(schema)
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]):
        key = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            for name in error.instance:
                if name not in known:
                    dotted = f"{key}.{name}" if key else name
                    problems.append(
                        f"config key {dotted!r} is not a kpms-flow setting (a typo?); "
                        f"known keys here: {', '.join(known)}"
                    )
        elif error.validator == "oneOf" and "description" in error.schema:
            problems.append(
                f"config key {key!r}: {error.instance!r} is not allowed ({error.schema['description'].strip()})"
            )
        else:
            problems.append(f"config key {key!r}: {error.message}")
    return problems


def anatomy_problems(config) -> list[str]:
    """Bodypart keys that contradict each other (checked before any data is read)."""
    problems = []
    named = config.get("bodyparts")
    use = config.get("use_bodyparts")
    if named:
        for key in ("use_bodyparts", "anterior_bodyparts", "posterior_bodyparts"):
            missing = [b for b in config.get(key) or [] if b not in named]
            if missing:
                problems.append(f"config key {key!r} names {missing}, not in config key 'bodyparts' {named}")
    if use:
        for key in ("anterior_bodyparts", "posterior_bodyparts"):
            missing = [b for b in config.get(key) or [] if b not in use]
            if missing:
                problems.append(f"config key {key!r} names {missing}, not in config key 'use_bodyparts' {use}")
    for key in ("bodyparts", "use_bodyparts"):
        names = config.get(key) or []
        repeated = sorted({b for b in names if names.count(b) > 1})
        if repeated:
            problems.append(f"config key {key!r} lists {repeated} more than once")
    return problems


def search_problems(config) -> list[str]:
    """Kappa-search settings that contradict each other or the stages' iteration counts
    (``config`` with its defaults filled in)."""
    search = config["kappa_search"]
    problems = []
    if search["enabled"]:
        for stage in ("arhmm", "full_model"):
            if search["num_iters"] > config[stage]["num_iters"]:
                problems.append(
                    f"config: kappa_search.num_iters ({search['num_iters']}) exceeds "
                    f"{stage}.num_iters ({config[stage]['num_iters']}), the stage's total"
                )
    for key in ("arhmm_log10_kappa", "full_model_log10_kappa_offset"):
        low, high = search[key]
        if low >= high:
            problems.append(f"config: kappa_search.{key} must increase, got {search[key]}")
    return problems


class WorkflowConfigError(InputError):
    """The config or the sessions table cannot start a run; the message lists every problem."""


def load_workflow_config(config: dict, schemas: Path, note: Callable[[str], None] | None = None):
    """Check the config and read the sessions table, as the workflow does before any job.

    The config is checked first for YAML pitfalls (``1e6`` read as a string), then against
    ``config.schema.yaml`` (every problem named by its key), then for anatomy and
    kappa-search settings that contradict each other. The sessions table named by
    ``config["sessions"]`` (relative to the working directory) is read and validated
    against ``sessions.schema.yaml``.

    Parameters
    ----------
    config : dict
        The config as Snakemake read it; changed in place: numbers coerced and the
        schema's defaults filled in (Snakemake's ``validate``).
    schemas : Path
        Folder holding ``config.schema.yaml`` and ``sessions.schema.yaml``.
    note : callable, optional
        Receives one line per value taken as a number (Snakemake's ``logger.info``).

    Returns
    -------
    config : dict
        The same object, with defaults.
    sessions : pandas.DataFrame
        The sessions table indexed by session name (defaults filled in).

    Raises
    ------
    WorkflowConfigError
        Listing every config problem and the sessions table's problem, if any.
    """
    import yaml
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    from .sessions import read_sessions_table

    schemas = Path(schemas)
    # libyaml's loader where PyYAML has it: the pure-Python one took 0.1 s of every Snakemake
    # start (each cluster job starts two), the same mapping.
    safe_loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    schema = yaml.load((schemas / "config.schema.yaml").read_text(), Loader=safe_loader)
    note = note or (lambda line: None)
    # YAML reads kappa: 1e6 as a string; take it as the number the user meant.
    for key in coerce_numeric_strings(config):
        note(f"config: read {key} as a number (YAML had it as a string)")
    for key in coerce_schema_integers(config, schema):
        note(f"config: read {key} as an integer")
    # Every problem at once, each naming its key (Snakemake's validate reports one, buried
    # under the whole schema); validate then fills in the defaults.
    problems = config_problems(config, schema)
    if not problems:
        validate(config, str(schemas / "config.schema.yaml"))
        problems = anatomy_problems(config) + search_problems(config)
    lines = []
    if problems:
        lines.append("invalid config (every key is described in config/README.md):")
        lines += [f"  {problem}" for problem in problems]

    # The table too, even when the config has problems: one run shows every mistake.
    table_path = config.get("sessions", schema["properties"]["sessions"].get("default"))
    sessions = None
    if isinstance(table_path, str):
        try:
            sessions = read_sessions_table(table_path)
        except (InputError, FileNotFoundError) as error:
            lines += [
                str(error),
                f"Write a sessions table with: kpms-flow-sessions 'path/to/pose/*.h5' --output {table_path}",
            ]
    if sessions is not None:
        try:
            validate(sessions, str(schemas / "sessions.schema.yaml"))
        except WorkflowError as error:
            lines.append(f"{table_path}: {error}")
        else:
            sessions = sessions.set_index("session", drop=False)
            if not sessions["train"].astype(bool).any():
                lines.append(f"{table_path}: no session has train: true")
    if lines:
        raise WorkflowConfigError("\n".join(lines))
    return config, sessions


def resolve_use_bodyparts(config: Mapping, bodyparts: Sequence[str], where: str) -> list[str]:
    """Check the anatomy keys against the bodyparts found in the data.

    ``where`` names the data source in error messages.
    """
    bodyparts = list(bodyparts)
    use = list(config.get("use_bodyparts") or bodyparts)
    for key, names in [
        ("use_bodyparts", use),
        ("anterior_bodyparts", config["anterior_bodyparts"]),
        ("posterior_bodyparts", config["posterior_bodyparts"]),
    ]:
        missing = [n for n in names if n not in bodyparts]
        if missing:
            raise InputError(
                f"config key {key!r} names bodyparts not in the data ({where}): {missing}; "
                f"available bodyparts: {bodyparts}"
            )
    for key in ("anterior_bodyparts", "posterior_bodyparts"):
        unused = [n for n in config[key] if n not in use]
        if unused:
            raise InputError(
                f"config key {key!r} names bodyparts not in use_bodyparts: {unused}"
            )
    return use


def kpms_config(config: Mapping, bodyparts: Sequence[str], latent_dim: int | None = None) -> dict:
    """The keyword arguments keypoint-moseq's functions take as ``**config()``."""
    import jax.numpy as jnp

    use = resolve_use_bodyparts(config, bodyparts, where="training sessions")
    ar = dict(config.get("ar_hypparams", {}))
    if latent_dim is not None:
        ar["latent_dim"] = int(latent_dim)
    out = {
        "bodyparts": list(bodyparts),
        "use_bodyparts": use,
        "skeleton": [list(pair) for pair in config.get("skeleton") or []],
        "anterior_bodyparts": list(config["anterior_bodyparts"]),
        "posterior_bodyparts": list(config["posterior_bodyparts"]),
        "anterior_idxs": jnp.array([use.index(b) for b in config["anterior_bodyparts"]]),
        "posterior_idxs": jnp.array([use.index(b) for b in config["posterior_bodyparts"]]),
        "conf_pseudocount": float(config["conf_pseudocount"]),
        "added_noise_level": float(config["added_noise_level"]),
        "verbose": False,
    }
    # Rules pass only the keys they need (a fit-only setting must not redo the PCA).
    optional = {
        "conf_threshold": float,
        "PCA_fitting_num_frames": int,
        "whiten": bool,
        "fix_heading": bool,
        "location_aware": bool,
        "trans_hypparams": dict,
        "obs_hypparams": dict,
        "cen_hypparams": dict,
        "error_estimator": dict,
    }
    for key, kind in optional.items():
        if key in config:
            out[key] = kind(config[key])
    if "calibrated" in out.get("error_estimator", {}):
        # The noise_calibration rule's table (a declared input of the job), not the config's.
        from .calibration import read_error_estimator

        out["error_estimator"] = read_error_estimator(out["error_estimator"]["calibrated"])
    if "ar_hypparams" in config or latent_dim is not None:
        out["ar_hypparams"] = ar
    return out
