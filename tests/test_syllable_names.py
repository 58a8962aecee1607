"""Syllable names and merges from the user's table (kpms_flow.syllable_names), no Snakemake."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kpms_flow.keypoints import InputError
from kpms_flow.results import session_table
from kpms_flow.syllable_names import (
    apply_mapping,
    merge_groups,
    named_table,
    names_of,
    read_syllable_table,
    syllable_mapping,
)

# Bouts: syllable 0 x3, 1 x2, 2 x2, 3 x1 (keypoint-moseq orders by number of bouts).
TRAINING = {
    "a": {"syllable": np.array([0, 0, 1, 1, 0, 2, 2, 0, 3, 3])},
    "b": {"syllable": np.array([1, 1, 2, 2, 2])},
}


def write_table(tmp_path, text):
    path = tmp_path / "syllables.tsv"
    path.write_text(text)
    return path


def test_merge_groups_follow_chains(tmp_path):
    path = write_table(
        tmp_path,
        "syllable\tname\tmerge_into\tdescription\n0\twalk\t\tforward\n3\t\t2\t\n2\t\t1\t\n",
    )
    table = read_syllable_table(path)
    assert merge_groups(table) == [[1, 2, 3]]


def test_mapping_numbers_groups_by_frequency_and_names_them(tmp_path):
    path = write_table(
        tmp_path,
        "syllable\tname\tmerge_into\tdescription\n"
        "0\twalk\t\tforward locomotion\n"
        "2\tturn\t\t\n"
        "3\t\t2\tsame as 2 in the dendrogram\n",
    )
    mapping = syllable_mapping(TRAINING, read_syllable_table(path), path)
    # bouts: 0 -> 3, {2, 3} -> 2 + 1 = 3, 1 -> 2; keypoint-moseq breaks the tie by group
    merged = dict(zip(mapping["syllable"], mapping["merged_syllable"]))
    assert merged[2] == merged[3]
    assert sorted(set(merged.values())) == [0, 1, 2]
    assert merged[1] == 2  # the least frequent group
    names, descriptions = names_of(mapping)
    assert names[merged[0]] == "walk" and names[merged[2]] == "turn"
    assert names[merged[1]] == str(merged[1])  # unnamed: its index as text
    assert descriptions[merged[2]] == "same as 2 in the dendrogram"
    assert mapping["in_training"].all()


def test_apply_mapping_relabels_a_copy_and_names_the_csv(tmp_path):
    path = write_table(tmp_path, "syllable\tname\tmerge_into\n0\twalk\t\n3\t\t2\n")
    mapping = syllable_mapping(TRAINING, read_syllable_table(path), path)
    results = {
        "syllable": np.array([0, 0, 3, 2, 1]),
        "centroid": np.zeros((5, 2)),
        "heading": np.zeros(5),
        "latent_state": np.zeros((5, 2)),
    }
    before = results["syllable"].copy()
    relabelled = apply_mapping(results, mapping)
    assert np.array_equal(results["syllable"], before)  # the input is not changed
    merged = dict(zip(mapping["syllable"], mapping["merged_syllable"]))
    assert relabelled["syllable"].tolist() == [merged[s] for s in before]
    table = named_table(session_table(relabelled, fps=10.0), mapping, before)
    assert table.columns[-2:].tolist() == ["syllable_name", "model_syllable"]
    assert table["syllable_name"].tolist()[:2] == ["walk", "walk"]
    assert table["model_syllable"].tolist() == before.tolist()


def test_syllables_training_never_used_get_indices_after_the_groups(tmp_path):
    path = write_table(tmp_path, "syllable\tname\n7\trare\n")
    mapping = syllable_mapping(TRAINING, read_syllable_table(path), path)
    merged = dict(zip(mapping["syllable"], mapping["merged_syllable"]))
    assert merged[7] == 4 + 7 - 4  # 4 groups, then by index
    assert not mapping.set_index("syllable").loc[7, "in_training"]
    relabelled = apply_mapping({"syllable": np.array([0, 7, 9])}, mapping)
    assert relabelled["syllable"].tolist() == [merged[0], 7, 9]
    assert names_of(mapping)[0][7] == "rare"


@pytest.mark.parametrize(
    "text, message",
    [
        ("name\nwalk\n", "no 'syllable' column"),
        ("syllable\tcolour\n0\tred\n", "unknown columns ['colour']"),
        ("syllable\tname\nx\twalk\n", "row 2, column 'syllable': 'x' is not a syllable index"),
        ("syllable\tname\n1\ta\n1\tb\n", "syllables [1] have more than one row"),
        ("syllable\tmerge_into\n1\t2\n2\t1\n", "merge_into makes a cycle"),
        ("syllable\tmerge_into\n1\t1\n", "merge_into makes a cycle (1 -> 1)"),
        ("syllable\tmerge_into\n1\t-2\n", "'-2' is not a syllable index"),
    ],
)
def test_bad_tables_are_refused_naming_the_file(tmp_path, text, message):
    path = write_table(tmp_path, text)
    with pytest.raises(InputError) as err:
        read_syllable_table(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_one_name_for_two_unmerged_groups_and_merging_unused_syllables_are_refused(tmp_path):
    path = write_table(tmp_path, "syllable\tname\n0\twalk\n1\twalk\n")
    with pytest.raises(InputError, match="name 'walk' is given to syllables 0 and 1"):
        syllable_mapping(TRAINING, read_syllable_table(path), path)
    path = write_table(tmp_path, "syllable\tmerge_into\n9\t0\n")
    with pytest.raises(InputError, match=r"syllables \[9\] are merged but never occur"):
        syllable_mapping(TRAINING, read_syllable_table(path), path)


def test_merged_rows_may_repeat_their_groups_name(tmp_path):
    path = write_table(tmp_path, "syllable\tname\tmerge_into\n2\tturn\t\n3\tturn\t2\n")
    mapping = syllable_mapping(TRAINING, read_syllable_table(path), path)
    assert pd.Series(names_of(mapping)[0]).tolist().count("turn") == 1
