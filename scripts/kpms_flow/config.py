"""Config helpers: YAML pitfalls, and the keypoint-moseq config built from ours."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

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
        "trans_hypparams": dict,
        "obs_hypparams": dict,
        "cen_hypparams": dict,
        "error_estimator": dict,
    }
    for key, kind in optional.items():
        if key in config:
            out[key] = kind(config[key])
    if "ar_hypparams" in config or latent_dim is not None:
        out["ar_hypparams"] = ar
    return out
