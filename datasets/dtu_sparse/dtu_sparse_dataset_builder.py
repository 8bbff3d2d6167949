"""dtu_sparse: DTU scans with RegNeRF's pixelNeRF split, 3/6/9 input views."""

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

_MASK_URL = ("https://drive.google.com/file/d/1Yt5T3LJ9DZDiHbtd9PDFNHqJAd7wt-_E"
             "/view?usp=sharing")

_DESCRIPTION_SUFFIX = (
    " Images are downsampled from 1600×1200 by {factor} with the '{resize}' "
    "filter ({filter_text}); masks likewise.")
_FILTER_TEXT = {
    "release": "mean of the central 2×2 pixels of each 4×4 block, i.e. what the "
               "RegNeRF release's cv2.resize call computes",
    "area": "mean of each block, a true area filter",
}


class Builder(tfds.core.GeneratorBasedBuilder):
  """DTU for sparse-view novel view synthesis (RegNeRF / pixelNeRF split)."""

  VERSION = builder_utils.VERSION
  # This folder is installed as regnerf_tf/datasets/<name> by package_dir, which
  # TFDS cannot infer from the module name in editable installs: say it here.
  pkg_dir_path = epath.Path(__file__).parent
  code_path = builder_utils.ClassProperty(epath.Path(__file__))
  RELEASE_NOTES = builder_utils.RELEASE_NOTES
  BUILDER_CONFIGS = [
      builder_utils.SparseViewConfig(
          name=f"{n}view{'' if resize == 'release' else '_area'}", num_views=n,
          resize=resize, factor=4,
          description=(f"{n} input views per scan (pixelNeRF train order), 25 "
                       "test views." + _DESCRIPTION_SUFFIX.format(
                           factor=4, resize=resize,
                           filter_text=_FILTER_TEXT[resize])))
      for resize in ("release", "area") for n in splits.NUM_VIEWS_CHOICES
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Put the DTU scans in `manual_dir` (`~/tensorflow_datasets/downloads/manual/`
  or `--manual_dir`) in one of two layouts; every scan found is built.

  Official layout (what RegNeRF's release reads):
    manual_dir/Rectified/scan<N>/rect_{{001..049}}_3_r5000.png
        from "Rectified" (rectified images) at
        https://roboimagedata.compute.dtu.dk/?page_id=36
    manual_dir/Calibration/cal18/pos_{{001..049}}.txt
        from the DTU "SampleSet" zip (SampleSet/MVS Data/Calibration/cal18)
    manual_dir/idrmasks/scan<N>/{{000..048}}.png  (or .../scan<N>/mask/000.png)
        RegNeRF's object masks (file idrmasks in submission_data), linked from
        the RegNeRF README: {_MASK_URL}
        Only the 25 test views need masks.

  IDR / NeuS layout (one folder per scan, e.g. the IDR or NeuS DTU downloads):
    manual_dir/scan<N>/cameras.npz or cameras_sphere.npz   (world_mat_0..48)
    manual_dir/scan<N>/image/ or images/ (or images_4/)    49 images, sorted
    manual_dir/scan<N>/mask/ (or mask_4/)                  49 masks, 255 = object

  RegNeRF evaluates scans {', '.join(str(s) for s in splits.DTU_SCANS)}.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    return self.dataset_info_from_configs(
        features=builder_utils.camera_features(with_mask=True),
        homepage="https://roboimagedata.compute.dtu.dk/?page_id=36",
        metadata=tfds.core.MetadataDict(
            num_views=config.num_views, resize=config.resize,
            factor=config.factor,
            train_views=splits.dtu_train_views(config.num_views),
            test_views=splits.dtu_test_views(),
            camera_convention=scene_kinds.DTU.convention,
            near=scene_kinds.DTU.near, far=scene_kinds.DTU.far),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = str(dl_manager.manual_dir)
    scenes = builder_utils.find_manual_scenes(
        root, ("dtu", "dtu_idr"),
        "Rectified/scan<N>/rect_001_3_r5000.png with "
        "Calibration/cal18/pos_001.txt (official layout) or "
        "scan<N>/cameras.npz or scan<N>/cameras_sphere.npz with image/ or "
        "images/ (IDR/NeuS layout)", self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    return builder_utils.split_generators(scenes, self._generate_examples)

  def _generate_examples(self, jobs: Sequence[tuple[str, str, str, str]]
                         ) -> Iterator[tuple[str, dict[str, Any]]]:
    config = self.builder_config
    for name, kind, path, split in jobs:
      if split == "train":
        views = splits.dtu_train_views(config.num_views)
      else:
        views = splits.dtu_test_views()
      reader = readers.read_dtu if kind == "dtu" else readers.read_dtu_idr
      for record in reader(path, factor=config.factor, resize=config.resize,
                           views=views):
        if split == "test" and not record["has_mask"]:
          raise errors.MissingFileError(
              f"Test view {record['view_index']} of {name} has no object mask. "
              "Expected one of "
              + " or ".join(readers.dtu_mask_candidates(
                  "<manual_dir>/idrmasks", name, int(record["view_index"])))
              + f" (official layout) or a mask/ folder in the scan (IDR/NeuS "
              f"layout). Download RegNeRF's masks: {_MASK_URL}")
        yield (f"{name}_{int(record['view_index']):02d}",
               builder_utils.to_example(record, with_mask=True))
