"""Scene splits and configs that would give silently wrong numbers are refused:
a view listed twice, an input view that is also a held-out view, a config
of the other scene family (LLFF/NDC against DTU/Blender)."""

import pathlib

import pytest

from regnerf_tf.datasets import splits
from regnerf_tf import configs, data, errors, scenes

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
FERN = SHARED / "llff" / "fern"
SCAN24 = SHARED / "dtu" / "scan24"
needs_shared = pytest.mark.skipif(
    not (FERN.is_dir() and SCAN24.is_dir()),
    reason=f"shared scenes not found under {SHARED}")


def test_a_view_listed_twice_is_refused():
  with pytest.raises(errors.InputError, match=r"views \[4\] more than once"):
    scenes.synthetic_scene(height=12, width=16, train_views=[0, 4, 4])


@needs_shared
def test_input_views_that_are_held_out_views_are_refused():
  held_out = splits.llff_test_views(20)
  assert 8 in held_out  # LLFF holds out every 8th view
  with pytest.raises(errors.InputError) as info:
    scenes.from_folder(str(FERN), train_views=[1, 8, 12])
  assert "[8]" in str(info.value) and "allow_overlap" in str(info.value)
  with pytest.raises(errors.InputError, match=r"\[2\] more than once"):
    scenes.from_folder(str(FERN), train_views=[1, 2, 2])
  # Allowed on purpose, for an experiment.
  scene = scenes.from_folder(str(FERN), train_views=[1, 8, 12],
                             allow_overlap=True)
  assert 8 in {int(r["view_index"]) for r in scene.test}
  # DTU: an explicit input view among the canonical held-out views.
  test_view = splits.dtu_test_views()[0]
  with pytest.raises(errors.InputError, match=rf"\[{test_view}\]"):
    scenes.from_folder(str(SCAN24), train_views=[25, 22, test_view])
  # The canonical splits are disjoint.
  for path in (FERN, SCAN24):
    scene = scenes.from_folder(str(path), 3)
    assert not ({int(r["view_index"]) for r in scene.train}
                & {int(r["view_index"]) for r in scene.test})


def test_a_config_of_the_other_scene_family_is_refused():
  llff = configs.get_preset("llff3_small")
  with pytest.raises(errors.ConfigError) as info:
    llff.check_scene_kind("dtu", "scene scan24")
  text = str(info.value)
  assert "llff3_small" in text and "scan24" in text and "dtu3*" in text
  with pytest.raises(errors.ConfigError, match="llff3\\* preset"):
    configs.get_preset("dtu3_small").check_scene_kind("llff")
  configs.get_preset("dtu3_small").check_scene_kind("blender")  # one family
  llff.check_scene_kind("llff")
  # The training stream refuses it too (the model.fit route and train()).
  scene = scenes.synthetic_scene(height=12, width=16)
  with pytest.raises(errors.ConfigError, match="blender scene"):
    data.training_stream(scene.train, llff)
