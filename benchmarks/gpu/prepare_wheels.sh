#!/usr/bin/env bash
# Fill .whl/ (ignored by git) with the wheels the GPU check carries: benchmarks/gpu/wheels.txt
# for CPython 3.12 on manylinux x86_64, the GPU machine's Python. Needs PyPI; run it here,
# not there. keypoint-moseq 0.8.1, commentjson 0.9.0 and lark-parser 0.7.8 have no wheel on
# PyPI (sdist only): they are built here (pure Python). Prints each wheel's size and the total against the
# 64 MiB that one device call carries (the working tree included).
#
#   bash benchmarks/gpu/prepare_wheels.sh            # into .whl/
#   bash benchmarks/gpu/prepare_wheels.sh /tmp/whl   # elsewhere
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=${1:-.whl}
if [ -z "${PIP:-}" ]; then
    if [ -x .venv/bin/python ]; then PIP=".venv/bin/python -m pip"; else PIP="python3 -m pip"; fi
fi
LIST=benchmarks/gpu/wheels.txt
BUILD_HERE="keypoint-moseq commentjson lark-parser"   # sdist only on PyPI

specs=$(sed 's/#.*//' "$LIST" | awk 'NF {print $1}')
binary=()
built=()
for spec in $specs; do
    name=${spec%%==*}
    if [[ " $BUILD_HERE " == *" $name "* ]]; then built+=("$spec"); else binary+=("$spec"); fi
done

rm -rf "$DEST"
mkdir -p "$DEST"
# pip matches manylinux_2_N exactly: list the N that these packages publish.
platforms=()
for tag in manylinux_2_39_x86_64 manylinux_2_35_x86_64 manylinux_2_34_x86_64 manylinux_2_31_x86_64 \
    manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
    manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$tag")
done
$PIP download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d "$DEST" "${binary[@]}" 2> >(grep -v '^WARNING: Location' >&2)
$PIP wheel --quiet --no-deps -w "$DEST" "${built[@]}" 2> >(grep -v '^WARNING: Location' >&2)

# One wheel per distribution: two versions of one stop the whole install there.
count=$(ls "$DEST"/*.whl | wc -l)
if [ "$count" -ne "$(echo "$specs" | wc -w)" ]; then
    echo "expected $(echo "$specs" | wc -w) wheels in $DEST, found $count" >&2
    exit 1
fi
ls -l "$DEST"/*.whl | awk '{printf "%10d  %s\n", $5, $NF}' | sort -rn
wheels=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
tree=$(git ls-files -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
untracked=$(git ls-files -z --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
limit=$((64 * 1024 * 1024))
total=$((wheels + tree + ${untracked:-0}))
printf 'wheels %d bytes (%.1f MiB); working tree %d + untracked %d; together %.1f MiB of %d MiB\n' \
    "$wheels" "$(echo "$wheels / 1048576" | bc -l)" "$tree" "${untracked:-0}" \
    "$(echo "$total / 1048576" | bc -l)" 64
if [ "$total" -gt "$limit" ]; then
    echo "over one device call's 64 MiB: the wheels must go over two calls" >&2
    exit 1
fi
