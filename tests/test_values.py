"""Values layers: Helm's merge rules, origins, masking."""

from __future__ import annotations

from hubfleet.values.merge import MASK, ValuesLayer, masked, merge_layers, redact, values_as_yaml

DEFAULTS = ValuesLayer(
    "chart/values.yaml", {"hub": {"image": "a", "extra": {"x": 1}}, "ports": [80, 443]}
)
COMMON = ValuesLayer("config/common.yaml", {"hub": {"image": "b"}, "ports": [8080]})
SECRET = ValuesLayer("secrets/config/m.yaml", {"hub": {"cookieSecret": "c0ffee" * 4}}, secret=True)


def test_maps_merge_lists_replace_scalars_override() -> None:
    merged = merge_layers([DEFAULTS, COMMON, SECRET])
    assert merged.values == {
        "hub": {"image": "b", "extra": {"x": 1}, "cookieSecret": "c0ffee" * 4},
        "ports": [8080],
    }


def test_null_deletes_a_key_and_a_later_layer_can_set_it_again() -> None:
    drop = ValuesLayer("config/m.yaml", {"hub": {"extra": None}})
    assert merge_layers([DEFAULTS, drop]).values["hub"] == {"image": "a"}
    again = ValuesLayer("secrets/config/m.yaml", {"hub": {"extra": {"y": 2}}})
    assert merge_layers([DEFAULTS, drop, again]).values["hub"]["extra"] == {"y": 2}


def test_user_values_keep_nulls_for_helm_to_delete_chart_defaults() -> None:
    drop = ValuesLayer("config/m.yaml", {"hub": {"extra": None}})
    assert merge_layers([COMMON, drop], keep_nulls=True).values["hub"] == {
        "image": "b",
        "extra": None,
    }


def test_a_map_replaces_a_scalar_and_vice_versa() -> None:
    a = ValuesLayer("a", {"k": "scalar"})
    b = ValuesLayer("b", {"k": {"nested": True}})
    assert merge_layers([a, b]).values == {"k": {"nested": True}}
    assert merge_layers([b, a]).values == {"k": "scalar"}


def test_layers_are_not_mutated() -> None:
    merge_layers([DEFAULTS, COMMON, SECRET])
    assert DEFAULTS.data["hub"] == {"image": "a", "extra": {"x": 1}}


def test_origins_name_the_last_layer_that_set_each_leaf() -> None:
    merged = merge_layers([DEFAULTS, COMMON, SECRET])
    assert merged.origins[("hub", "image")].name == "config/common.yaml"
    assert merged.origins[("hub", "extra", "x")].name == "chart/values.yaml"
    assert merged.origins[("ports",)].name == "config/common.yaml"
    assert merged.origins[("hub", "cookieSecret")].secret


def test_replacing_a_map_forgets_the_origins_of_its_old_children() -> None:
    a = ValuesLayer("a", {"k": {"x": 1, "y": 2}})
    b = ValuesLayer("b", {"k": "flat"})
    merged = merge_layers([a, b])
    assert set(merged.origins) == {("k",)}


def test_secret_values_are_masked_and_nothing_else() -> None:
    merged = merge_layers([DEFAULTS, COMMON, SECRET])
    shown = masked(merged)
    assert shown["hub"]["cookieSecret"] == MASK
    assert shown["hub"]["image"] == "b"
    assert merged.values["hub"]["cookieSecret"] == "c0ffee" * 4  # the original is untouched


def test_a_secret_subtree_is_masked_leaf_by_leaf() -> None:
    tree = ValuesLayer(
        "secrets/config/common.yaml", {"s3": {"key": "AKIAXXXX", "secret": "zzzzzzzz"}}, True
    )
    text = values_as_yaml(merge_layers([COMMON, tree]))
    assert "AKIAXXXX" not in text and "zzzzzzzz" not in text
    assert text.count(MASK) == 2


def test_show_origin_annotates_every_leaf_and_masks() -> None:
    text = values_as_yaml(merge_layers([DEFAULTS, COMMON, SECRET]), show_origin=True)
    assert "image: b  # config/common.yaml" in text
    assert "x: 1  # chart/values.yaml" in text
    assert f"cookieSecret: '{MASK}'  # secrets/config/m.yaml" in text
    assert "c0ffee" not in text


def test_redact_replaces_every_secret_occurrence() -> None:
    merged = merge_layers([SECRET])
    assert redact(f"token={'c0ffee' * 4};", merged.secret_strings()) == f"token={MASK};"
