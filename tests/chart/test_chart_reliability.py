"""The chart's encryption.key.id: the pinned key id rendered into cmf's configuration only when set,
checked by the schema, and explained by NOTES (rendered by the real helm binary, as in test_chart.py)."""
# helm: test_chart's module-scoped fixture, used by the tests below.
from test_chart import REQUIRED, accepted_config_keys, cmf_config, helm, leaf_keys, notes, template, template_fails

assert helm  # the fixture, imported for the tests' parameter

PIN = "0123456789abcdef"


def test_no_pin_by_default_and_notes_recommend_one(helm):
    config = cmf_config(template(helm, *REQUIRED)[1])
    assert "id" not in config["encryption"]["key"]
    text = notes(helm, *REQUIRED)
    assert "The key is not pinned" in text and "encryption.key.id" in text


def test_pin_is_rendered_and_named_in_notes(helm):
    config = cmf_config(template(helm, *REQUIRED, "--set", "encryption.key.id=" + PIN)[1])
    assert config["encryption"]["key"]["id"] == PIN
    assert set(leaf_keys(config)) <= accepted_config_keys()
    assert "pinned to key id %s" % PIN in notes(helm, *REQUIRED, "--set", "encryption.key.id=" + PIN)


def test_malformed_pin_is_refused_by_the_schema(helm):
    for bad in ("0123456789ABCDEF", "0123", "not-a-key-id-at-all"):
        err = template_fails(helm, *REQUIRED, "--set", "encryption.key.id=" + bad)
        assert "schema" in err, (bad, err)
