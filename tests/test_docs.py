"""config/README.md documents every config key, as the schema defines it."""

from kpms_flow import docs


def test_config_readme_lists_every_schema_key():
    text = docs.README.read_text()
    assert docs.render(text) == text, "regenerate with: python -m kpms_flow.docs"
    for key in ["kappa_search.target_duration_ms", "arhmm.kappa", "latent_dim", "qa.max_nan_fraction"]:
        assert f"| `{key}` |" in text
