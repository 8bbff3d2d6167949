"""llff_sparse: LLFF forward-facing scenes with RegNeRF's split, 3/6/9 views."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import tensorflow_datasets as tfds
from etils import epath

from regnerf_tf import errors
from regnerf_tf import scene_kinds
from regnerf_tf.datasets import builder_utils
from regnerf_tf.datasets import readers
from regnerf_tf.datasets import splits

_DATA_URL = ("https://drive.google.com/drive/folders/"
             "128yBriW1IG_3NJ5Rp7APSTZsJqdJdfc1")


class Builder(tfds.core.GeneratorBasedBuilder):
  """LLFF for sparse-view novel view synthesis (RegNeRF split)."""

  VERSION = builder_utils.VERSION
  # This folder is installed as regnerf_tf/datasets/<name> by package_dir, which
  # TFDS cannot infer from the module name in editable installs: say it here.
  pkg_dir_path = epath.Path(__file__).parent
  code_path = builder_utils.ClassProperty(epath.Path(__file__))
  RELEASE_NOTES = builder_utils.RELEASE_NOTES
  BUILDER_CONFIGS = [
      builder_utils.SparseViewConfig(
          name=f"{n}view", num_views=n, resize="area", factor=8,
          description=(
              f"{n} input views per scene, spread by linspace over the "
              "non-test images; every 8th image is a test view. Images are the "
              "pre-downsampled images_8/ files (504×378 for the standard "
              "scenes), stored unchanged; a scene without images_8/ is "
              "downsampled from images/ by 8 with an area filter."))
      for n in splits.NUM_VIEWS_CHOICES
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Put the LLFF scenes in `manual_dir` (`~/tensorflow_datasets/downloads/manual/`
  or `--manual_dir`), one folder per scene; every scene found is built:
    manual_dir/<scene>/poses_bounds.npy
    manual_dir/<scene>/images_8/*.png|*.jpg   (or images/, downsampled here)
  The official scenes ({', '.join(splits.LLFF_SCENES)}) are in
  nerf_llff_data.zip from the NeRF authors' Google Drive: {_DATA_URL}
  (unzip it and pass the nerf_llff_data folder as manual_dir). Your own
  captures work too: run LLFF's imgs2poses.py (COLMAP) to get
  poses_bounds.npy.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    return self.dataset_info_from_configs(
        features=builder_utils.camera_features(with_mask=False),
        homepage="https://github.com/Fyusion/LLFF",
        metadata=tfds.core.MetadataDict(
            num_views=config.num_views, resize=config.resize,
            factor=config.factor, llff_hold=splits.LLFF_HOLD,
            camera_convention=scene_kinds.LLFF.convention,
            ndc=scene_kinds.LLFF.ndc),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = str(dl_manager.manual_dir)
    scenes = builder_utils.find_manual_scenes(
        root, ("llff",), "<scene>/poses_bounds.npy with <scene>/images_8/ or "
        "<scene>/images/", self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    return builder_utils.split_generators(scenes, self._generate_examples)

  def _generate_examples(self, jobs: Sequence[tuple[str, str, str, str]]
                         ) -> Iterator[tuple[str, dict[str, Any]]]:
    config = self.builder_config
    for name, _, path, split in jobs:
      num_images = readers.llff_num_views(path, config.factor)
      try:
        if split == "train":
          views = splits.llff_train_views(num_images, config.num_views)
        else:
          views = splits.llff_test_views(num_images)
      except ValueError as e:
        raise errors.InputError(
            f"LLFF scene {name} has {num_images} images, too few for "
            f"{config.num_views} input views plus every 8th image held out "
            f"({e}). Use a config with fewer views or remove the scene from "
            "manual_dir.") from e
      for record in readers.read_llff(path, factor=config.factor,
                                      resize=config.resize, views=views):
        yield (f"{name}_{int(record['view_index']):03d}",
               builder_utils.to_example(record, with_mask=False))
