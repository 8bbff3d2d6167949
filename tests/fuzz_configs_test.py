"""Property tests (hypothesis) of config validation in regnerf_tf.configs.

What is fuzzed, and the property each input must satisfy:

* ``get_preset(name, **{"section.field": value})`` for every field of every
  sub-config (and the top-level ``name`` / ``release_compat``), with values
  drawn from integers (unbounded), floats (NaN and ±inf included), text,
  booleans, None, lists and dicts;
* ``Config.from_dict`` on arbitrary dicts: real and junk field names, sections
  given as dicts of fuzzed fields, non-dict sections and non-dict payloads;
* ``Config.from_json`` on arbitrary text and on JSON dumps of such dicts;
* ``parse_override`` on arbitrary ``key=value`` strings, its result then fed
  to ``get_preset``.

Each call must either return a valid :class:`configs.Config` — whose float
fields are all finite and which round-trips through ``to_json`` /
``from_json`` to an equal Config — or raise :class:`errors.ConfigError`. Any
other exception (TypeError, KeyError, OverflowError, RecursionError, ...) is
a bug in the validation. NaN and ±inf are refused for every float field.

Examples are derandomized (the same on every run) and bounded so the file runs
in seconds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing

import pytest
from hypothesis import given, settings, strategies as st

from regnerf_tf import configs, errors

FUZZ = settings(max_examples=40, deadline=None, derandomize=True)
SECTIONS = {"model": configs.ModelConfig, "reg": configs.RegConfig,
            "train": configs.TrainConfig, "data": configs.DataConfig}


def _hints(cls) -> dict[str, type]:
  return typing.get_type_hints(cls)


FIELDS = [f"{section}.{name}" for section, cls in SECTIONS.items()
          for name in _hints(cls)] + ["name", "release_compat"]
FLOAT_FIELDS = [f"{section}.{name}" for section, cls in SECTIONS.items()
                for name, hint in _hints(cls).items() if hint is float]
NAMES = configs.preset_names()

SCALARS = st.one_of(
    st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.booleans(), st.none(),
    st.sampled_from(["cone", "cylinder", "release", "paper", "all_images",
                     "float32", "llff", "dtu", "blender"]))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3),
                   st.dictionaries(st.text(max_size=5), SCALARS, max_size=2))


def _section_dict(cls) -> st.SearchStrategy:
  """Dicts of (mostly real) field names of ``cls`` to fuzzed values."""
  keys = st.one_of(st.sampled_from(sorted(_hints(cls))), st.text(max_size=8))
  return st.dictionaries(keys, VALUES, max_size=6)


CONFIG_DICTS = st.one_of(
    st.fixed_dictionaries({}, optional={
        "name": VALUES, "release_compat": VALUES,
        **{s: st.one_of(_section_dict(c), VALUES)
           for s, c in SECTIONS.items()}}),
    st.dictionaries(st.one_of(st.text(max_size=8), st.integers(),
                              st.none()), VALUES, max_size=4),
    VALUES)


def _valid_or_config_error(make):
  """Runs ``make``; a Config must be finite and round-trip through JSON."""
  try:
    config = make()
  except errors.ConfigError:
    return None
  assert isinstance(config, configs.Config)
  for section, cls in SECTIONS.items():
    part = getattr(config, section)
    assert isinstance(part, cls)
    for name, hint in _hints(cls).items():
      value = getattr(part, name)
      assert type(value) is hint, (section, name, value)  # coerced exactly
      if hint is float:
        assert math.isfinite(value), (section, name, value)
  assert configs.Config.from_json(config.to_json()) == config
  return config


@pytest.mark.parametrize("field", FIELDS)
@FUZZ
@given(name=st.sampled_from(NAMES), value=VALUES)
def test_any_field_value_gives_config_or_config_error(field, name, value):
  _valid_or_config_error(lambda: configs.get_preset(name, **{field: value}))


@pytest.mark.parametrize("field", FLOAT_FIELDS)
@settings(max_examples=6, deadline=None, derandomize=True)
@given(value=st.sampled_from([math.nan, math.inf, -math.inf, 10**400,
                              -(10**400)]))
def test_float_fields_refuse_non_finite(field, value):
  with pytest.raises(errors.ConfigError, match=field.split(".")[1]):
    configs.get_preset("dtu3", **{field: value})


@settings(max_examples=400, deadline=None, derandomize=True)
@given(data=CONFIG_DICTS)
def test_from_dict_gives_config_or_config_error(data):
  _valid_or_config_error(lambda: configs.Config.from_dict(data))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=st.one_of(st.text(max_size=40),
                      CONFIG_DICTS.map(lambda d: json.dumps(d, default=str)),
                      st.just("[" * 5000), st.just("1" * 5000)))
def test_from_json_gives_config_or_config_error(text):
  _valid_or_config_error(lambda: configs.Config.from_json(text))


def test_a_preset_round_trips_through_from_dict():
  """The property's valid branch is reachable (not only errors)."""
  for name in NAMES:
    config = configs.get_preset(name)
    assert _valid_or_config_error(
        lambda c=config: configs.Config.from_dict(c.to_dict())) == config


OVERRIDE_KEYS = st.one_of(st.sampled_from(FIELDS), st.text(max_size=12))
OVERRIDE_VALUES = st.one_of(st.text(max_size=12),
                            VALUES.map(lambda v: json.dumps(v, default=str)))


@settings(max_examples=500, deadline=None, derandomize=True)
@given(text=st.one_of(
    st.text(max_size=30),
    st.tuples(OVERRIDE_KEYS, OVERRIDE_VALUES).map("=".join),
    st.tuples(OVERRIDE_KEYS, OVERRIDE_VALUES, OVERRIDE_VALUES).map("=".join)))
def test_parse_override_gives_known_field_or_config_error(text):
  try:
    key, value = configs.parse_override(text)
  except errors.ConfigError:
    return
  assert key in FIELDS, key
  _valid_or_config_error(lambda: configs.get_preset("dtu3", **{key: value}))


def test_fields_cover_every_dataclass_field():
  for section, cls in SECTIONS.items():
    for f in dataclasses.fields(cls):
      assert f"{section}.{f.name}" in FIELDS
