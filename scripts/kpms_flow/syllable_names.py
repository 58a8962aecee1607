"""Syllable names and merges from a user's table (config key ``syllable_table``).

The table (TSV) has one row per syllable the user names or merges::

    syllable  name   merge_into  description
    0         walk               forward locomotion
    3         groom              face grooming
    5                3           the same as 3 in the dendrogram

``merge_into`` joins a syllable to another one's group (chains are followed); a group is
named by the row it merges into. keypoint-moseq's ``generate_syllable_mapping`` numbers the
groups by frequency in the training sessions (0 = most frequent) and
``apply_syllable_mapping`` relabels a copy of a session's results: the model and its
results files are never changed.
"""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd

from .keypoints import InputError

COLUMNS = ["syllable", "name", "merge_into", "description"]
MAPPING_COLUMNS = ["syllable", "merged_syllable", "name", "description", "in_training"]


def _integer(value, path, row, column) -> int | None:
    text = str(value).strip()
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not number.is_integer() or number < 0:
        raise InputError(f"{path}: row {row}, column {column!r}: {text!r} is not a syllable index (an integer >= 0)")
    return int(number)


def read_syllable_table(path) -> pd.DataFrame:
    """Read and check the user's table.

    Returns
    -------
    pandas.DataFrame
        ``syllable`` (int), ``name`` (str, may be empty), ``merge_into`` (int or None),
        ``description`` (str), one row per syllable.

    Raises
    ------
    InputError
        Naming the file, row and cause: a missing ``syllable`` column, an unknown column, a
        non-integer index, a repeated syllable, a syllable merged into itself or in a cycle,
        or one name given to two groups.
    """
    try:
        raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: cannot be read as a tab-separated syllable table: {err}") from err
    raw.columns = [c.strip() for c in raw.columns]
    if "syllable" not in raw.columns:
        raise InputError(f"{path}: no 'syllable' column; the table's columns are {COLUMNS}")
    unknown = [c for c in raw.columns if c not in COLUMNS]
    if unknown:
        raise InputError(f"{path}: unknown columns {unknown}; the table's columns are {COLUMNS}")
    rows = []
    for i, record in enumerate(raw.to_dict("records"), start=2):  # row 1 is the header
        syllable = _integer(record["syllable"], path, i, "syllable")
        if syllable is None:
            raise InputError(f"{path}: row {i} has no syllable index")
        rows.append(
            {
                "syllable": syllable,
                "name": str(record.get("name", "")).strip(),
                "merge_into": _integer(record.get("merge_into", ""), path, i, "merge_into"),
                "description": str(record.get("description", "")).strip(),
            }
        )
    table = pd.DataFrame(rows, columns=COLUMNS)
    repeated = sorted(set(table.loc[table["syllable"].duplicated(), "syllable"]))
    if repeated:
        raise InputError(f"{path}: syllables {repeated} have more than one row")
    merge_groups(table, path)  # cycles, self-merges
    return table


def _root(syllable: int, targets: dict, path) -> int:
    seen = [syllable]
    while targets.get(seen[-1]) is not None:
        nxt = targets[seen[-1]]
        if nxt in seen:
            cycle = " -> ".join(str(s) for s in seen + [nxt])
            raise InputError(f"{path}: merge_into makes a cycle ({cycle}); one syllable of a group must merge into none")
        seen.append(nxt)
    return seen[-1]


def merge_groups(table: pd.DataFrame, path="syllable table") -> list[list[int]]:
    """Groups of syllables joined by ``merge_into`` (each sorted; singletons left out)."""
    targets = {int(r.syllable): (None if pd.isna(r.merge_into) else int(r.merge_into)) for r in table.itertuples()}
    groups: dict[int, set] = {}
    for syllable, target in targets.items():
        if target is None:
            continue
        root = _root(syllable, targets, path)
        groups.setdefault(root, {root}).add(syllable)
    return sorted(sorted(g) for g in groups.values())


def group_labels(table: pd.DataFrame, path="syllable table") -> dict[int, tuple[str, str]]:
    """Model syllable -> (name, description) of its group: the root row's, else the first
    named member's (by index)."""
    targets = {int(r.syllable): (None if pd.isna(r.merge_into) else int(r.merge_into)) for r in table.itertuples()}
    rows = {int(r.syllable): r for r in table.itertuples()}
    members: dict[int, list[int]] = {}
    for syllable in sorted(targets):
        members.setdefault(_root(syllable, targets, path), []).append(syllable)
    for root in list(members):
        if root not in members[root]:
            members[root].insert(0, root)
    labels, owners = {}, {}
    for root, group in members.items():
        candidates = [root] + [s for s in group if s != root]
        name = next((rows[s].name for s in candidates if s in rows and rows[s].name), "")
        description = next((rows[s].description for s in candidates if s in rows and rows[s].description), "")
        if name and name in owners and owners[name] != root:
            raise InputError(
                f"{path}: name {name!r} is given to syllables {owners[name]} and {root}, which are "
                "not merged; merge them (merge_into) or name them apart"
            )
        owners[name] = root
        for s in group:
            labels[s] = (name, description)
    return labels


def read_training_syllables(results_h5) -> dict[str, dict[str, np.ndarray]]:
    """Only the ``syllable`` arrays of a keypoint-moseq results.h5, per session."""
    with h5py.File(results_h5, "r") as f:
        return {session: {"syllable": f[session]["syllable"][()]} for session in f}


def syllable_mapping(training_results: dict, table: pd.DataFrame, path="syllable table") -> pd.DataFrame:
    """Model syllable -> merged syllable, name and description.

    Parameters
    ----------
    training_results : dict
        session -> {"syllable": array} of the training sessions (frequencies decide the
        merged indices: keypoint-moseq's generate_syllable_mapping, by number of bouts).
    table : pandas.DataFrame
        :func:`read_syllable_table`.

    Returns
    -------
    pandas.DataFrame
        ``syllable``, ``merged_syllable``, ``name`` (the merged index as text when
        unnamed), ``description``, ``in_training``: one row per syllable of the training
        sessions, and for syllables the table names that training never used (numbered
        after the others).
    """
    import keypoint_moseq as kpms

    observed = int(max(int(np.max(r["syllable"])) for r in training_results.values())) + 1
    groups = merge_groups(table, path)
    beyond = sorted({s for g in groups for s in g if s >= observed})
    if beyond:
        raise InputError(
            f"{path}: syllables {beyond} are merged but never occur in the training sessions "
            f"(which use syllables 0-{observed - 1}); only used syllables can be merged"
        )
    mapping = {int(k): int(v) for k, v in kpms.generate_syllable_mapping(training_results, groups).items()}
    labels = group_labels(table, path)
    for s in sorted(set(table["syllable"]) - set(mapping)):
        mapping[s] = extended_index(s, observed, mapping)
    rows = []
    for s in sorted(mapping):
        name, description = labels.get(s, ("", ""))
        rows.append(
            {
                "syllable": s,
                "merged_syllable": mapping[s],
                "name": name or str(mapping[s]),
                "description": description,
                "in_training": s < observed,
            }
        )
    return pd.DataFrame(rows, columns=MAPPING_COLUMNS)


def extended_index(syllable: int, observed: int, mapping: dict) -> int:
    """A merged index for a syllable training never used: after every group, by its own
    index (the same in every session, distinct from all others)."""
    groups = len(set(v for k, v in mapping.items() if k < observed))
    return groups + syllable - observed


def apply_mapping(results: dict[str, np.ndarray], mapping: pd.DataFrame) -> dict[str, np.ndarray]:
    """One session's results with syllables relabelled (keypoint-moseq's
    apply_syllable_mapping, on a copy); other arrays are copied unchanged."""
    import keypoint_moseq as kpms

    table = dict(zip(mapping["syllable"].astype(int), mapping["merged_syllable"].astype(int)))
    observed = int(mapping["in_training"].astype(str).str.lower().eq("true").sum())
    for s in np.unique(results["syllable"]).astype(int):
        if int(s) not in table:  # an applied session may use a syllable training did not
            table[int(s)] = extended_index(int(s), observed, table)
    return kpms.apply_syllable_mapping({"session": results}, table)["session"]


def names_of(mapping: pd.DataFrame) -> tuple[dict[int, str], dict[int, str]]:
    """Merged syllable -> name, and -> description."""
    grouped = mapping.drop_duplicates("merged_syllable")
    names = dict(zip(grouped["merged_syllable"].astype(int), grouped["name"].astype(str)))
    descriptions = dict(zip(grouped["merged_syllable"].astype(int), grouped["description"].fillna("").astype(str)))
    return names, descriptions


def read_mapping(path) -> pd.DataFrame:
    """A mapping written by the ``syllable_mapping`` rule."""
    return pd.read_csv(path, sep="\t", keep_default_na=False)


def named_table(table: pd.DataFrame, mapping: pd.DataFrame, model_syllables) -> pd.DataFrame:
    """A session's CSV table with ``syllable_name`` and ``model_syllable`` columns added at
    the end (keypoint-moseq's columns keep their order)."""
    names, _ = names_of(mapping)
    table = table.copy()
    table["syllable_name"] = [names.get(int(s), str(int(s))) for s in table["syllable"]]
    table["model_syllable"] = np.asarray(model_syllables).astype(int)
    return table

