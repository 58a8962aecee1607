"""Render the config schema as the key reference in config/README.md.

The schema is the single source of truth for defaults and descriptions; a test checks
that config/README.md matches it. Regenerate with: python -m kpms_flow.docs
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
README = ROOT / "config" / "README.md"
BEGIN = "<!-- keys: generated from workflow/schemas/config.schema.yaml -->"
END = "<!-- end of keys -->"


def _rows(properties: dict, prefix: str = ""):
    for key, spec in properties.items():
        name = f"{prefix}{key}"
        default = spec.get("default")
        if "properties" in spec:
            yield name, "", " ".join(spec.get("description", "").split())
            yield from _rows(spec["properties"], prefix=f"{name}.")
        else:
            text = "null" if default is None else yaml.safe_dump(default, default_flow_style=True).strip()
            text = text.removesuffix("...").strip()
            yield name, f"`{text}`", " ".join(spec.get("description", "").split())


def key_table() -> str:
    schema = yaml.safe_load(SCHEMA.read_text())
    lines = ["| key | default | meaning |", "|---|---|---|"]
    lines += [f"| `{k}` | {d} | {m} |" for k, d, m in _rows(schema["properties"])]
    return "\n".join(lines)


def render(readme_text: str) -> str:
    head, rest = readme_text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{key_table()}\n{END}{tail}"


def main() -> int:
    README.write_text(render(README.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
