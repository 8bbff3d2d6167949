"""One place that turns "which scene" into train / test / all-camera records.

Sources:

* a scene folder (any format :func:`regnerf_tf.datasets.readers.from_directory`
  reads), with the canonical sparse split of its kind (DTU: pixelNeRF split;
  LLFF: every 8th image held out, n views by linspace; Blender: the first n
  frames of ``train`` and the ``test`` frames) or explicit view indices;
* a TFDS dataset built by the project's builders (``llff_sparse/3view``) with a
  scene name (``fern``), read from ``data_dir`` or built from ``manual_dir``;
* the project's synthetic scene (``synthetic``), built in memory.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from regnerf_tf import errors
from regnerf_tf import scene_kinds
from regnerf_tf import synthetic
from regnerf_tf.datasets import image_ops, readers, splits

SYNTHETIC_TRAIN_VIEWS = (2, 6, 10)
SYNTHETIC_NUM_VIEWS = 14


@dataclasses.dataclass
class Scene:
  """Records of one scene, split.

  Attributes:
    name: scene name.
    kind: the records' kind, a name of :data:`regnerf_tf.scene_kinds.KINDS`
      ("dtu", "llff", "blender"); :attr:`scene_kind` is its record.
    train: records of the input views.
    test: records of the held-out views (may be empty).

  Every record carries all cameras of the scene in its ``scene_*`` fields,
  which the unobserved-pose bank is sampled from.
  """
  name: str
  kind: str
  train: list[dict]
  test: list[dict]

  @property
  def scene_kind(self) -> scene_kinds.SceneKind:
    """How this scene's cameras and rays behave (bounds, NDC, pose sampler,
    render path)."""
    return scene_kinds.get(self.kind)


def _select(records: Sequence[dict], indices: Sequence[int], what: str
            ) -> list[dict]:
  twice = sorted({int(i) for i in indices if list(indices).count(i) > 1})
  if twice:
    raise errors.InputError(
        f"{what} names views {twice} more than once ({list(indices)}); a "
        "view counted twice weighs double in training and in the scores. "
        "List each view once.")
  by_index = {int(r["view_index"]): r for r in records}
  missing = [i for i in indices if i not in by_index]
  if missing:
    raise errors.InputError(f"{what}: views {missing} do not exist; the scene has "
                     f"views {sorted(by_index)}.")
  return [by_index[i] for i in indices]


def check_disjoint(train_views: Sequence[int], test_views: Sequence[int],
                   allow_overlap: bool = False) -> None:
  """Refuses input views that are also held-out views (unless allowed)."""
  both = sorted(set(int(i) for i in train_views)
                & set(int(i) for i in test_views))
  if both and not allow_overlap:
    raise errors.InputError(
        f"Views {both} are both input views and held-out views (input "
        f"{sorted(int(i) for i in train_views)}); a held-out score on a view "
        "the model trained on measures memorisation, not novel views. Choose "
        "input views outside the held-out ones, or allow it on purpose "
        "(allow_overlap=True, --allow_view_overlap) for an experiment.")


# The canonical split belongs to the layout (the dataset a scene comes from),
# not to its kind: a COLMAP capture of an object is of kind "blender" but has
# no test split of its own, so it gets LLFF's. Per layout: (train view indices
# from (number of views, n_views), held-out view indices from the number of
# views). Blender scenes have their own train/test files (see from_folder).
CANONICAL_SPLITS = {
    "dtu": (lambda num, n: splits.dtu_train_views(n),
            lambda num: [i for i in splits.dtu_test_views() if i < num]),
    "llff": (splits.llff_train_views, splits.llff_test_views),
}
CANONICAL_SPLITS.update({"dtu_idr": CANONICAL_SPLITS["dtu"],
                         "colmap": CANONICAL_SPLITS["llff"],
                         "transforms": CANONICAL_SPLITS["llff"]})


def from_folder(path: str, n_views: int = 3,
                train_views: Sequence[int] | None = None,
                test_views: Sequence[int] | None = None,
                allow_overlap: bool = False, image_order: str = "auto",
                exif: str = "auto", layout: str = "auto") -> Scene:
  """Reads a scene folder and applies its canonical sparse split.

  Args:
    path: scene folder.
    n_views: number of input views (canonical split).
    train_views, test_views: explicit 0-based view indices instead.
    allow_overlap: accept input views that are also held-out views (an
      experiment; refused by default).
    image_order: how image files pair with camera rows in layouts that list
      a folder (LLFF, IDR/NeuS): "auto", "text" or "number" (see
      :func:`regnerf_tf.datasets.readers.read_llff`).
    exif: which pixels the cameras describe for photos with an EXIF
      orientation tag: "auto", "stored" or "displayed" (see
      :mod:`regnerf_tf.datasets.orientation`).
    layout: for COLMAP captures: "forward" (forward-facing, LLFF-style),
      "object" (object-centric) or "auto" (from the cameras; see
      :func:`regnerf_tf.datasets.readers.read_colmap`).

  COLMAP captures get LLFF's split (every 8th view held out, the input
  views spread over the others) whatever their layout.
  """
  if train_views is not None and len(train_views) == 0:
    raise errors.InputError("train_views is empty; expected at least one 0-based "
                            "view index (or None for the canonical split).")
  if train_views is None and not (isinstance(n_views, int) and n_views >= 1):
    raise errors.InputError(f"n_views must be a positive integer; received "
                            f"{n_views!r}.")
  fmt = readers.detect_format(path)
  options = {"exif": exif}
  if image_order != "auto":
    if fmt not in readers.LISTED_FORMATS:
      raise errors.InputError(
          f"image_order={image_order!r} (--image_order) applies to layouts "
          "that pair a folder of images with rows of a camera file (LLFF, "
          f"IDR/NeuS); {path} is a {fmt} scene whose camera file names each "
          "image. Leave image_order at 'auto'.")
    options["image_order"] = image_order
  if layout != "auto":
    if fmt not in readers.CAPTURE_FORMATS:
      raise errors.InputError(
          f"layout={layout!r} (--layout) applies to captures (COLMAP, "
          "instant-ngp/nerfstudio transforms.json), whose "
          f"kind is chosen from the cameras; {path} is a {fmt} scene, whose "
          "format fixes it. Leave layout at 'auto'.")
    options["kind"] = layout
  if fmt == "blender":
    train_all = readers.read_blender(path, split="train", **options)
    try:
      test_all = readers.read_blender(path, split="test", **options)
    except FileNotFoundError:
      test_all = []
    # Blender's held-out views come from its own test split: no overlap.
    train = _select(train_all, train_views or list(range(n_views)),
                    "train_views")
    test = (_select(test_all, test_views, "test_views") if test_views
            else test_all)
    return Scene(str(train[0]["scene"]), "blender", train, test)
  records = readers.from_directory(path, **options)
  kind = scene_kinds.get(records[0]["kind"]).name
  canonical_train, canonical_test = CANONICAL_SPLITS[fmt]
  if train_views is None:
    train_views = canonical_train(len(records), n_views)
  if test_views is None:
    test_views = canonical_test(len(records))
  check_disjoint(train_views, test_views, allow_overlap)
  return Scene(str(records[0]["scene"]), kind,
               _select(records, train_views, "train_views"),
               _select(records, test_views, "test_views"))


def from_tfds(name: str, scene: str, data_dir: str | None = None,
              manual_dir: str | None = None) -> Scene:
  """Loads ``<scene>_train`` and ``<scene>_test`` of a project TFDS dataset.

  Args:
    name: e.g. "llff_sparse/3view" or "dtu_sparse/3view".
    scene: e.g. "fern" or "scan114".
    data_dir: TFDS data directory.
    manual_dir: where the builder finds the raw files if it must build.
  """
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  builder = tfds.builder(name, data_dir=data_dir)
  if not builder.is_prepared():
    if manual_dir is None:
      raise errors.MissingFileError(
          f"TFDS dataset {name} is not built in {builder.data_dir}; pass "
          "--manual_dir pointing at the raw scenes (see datasets/README.md) "
          "so it can be built.")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  available = set(builder.info.splits)
  for split in (f"{scene}_train", f"{scene}_test"):
    if split not in available:
      scenes = sorted({s.rsplit("_", 1)[0] for s in available if "_" in s})
      raise errors.InputError(f"{name} has no split {split!r}; scenes available: "
                       f"{scenes}.")
  train = list(builder.as_dataset(split=f"{scene}_train").as_numpy_iterator())
  test = list(builder.as_dataset(split=f"{scene}_test").as_numpy_iterator())
  kind = train[0]["kind"]
  kind = kind.decode() if isinstance(kind, bytes) else str(kind)
  return Scene(scene, kind, train, test)


def synthetic_scene(height: int = 60, width: int = 80,
                    train_views: Sequence[int] = SYNTHETIC_TRAIN_VIEWS,
                    num_views: int = SYNTHETIC_NUM_VIEWS) -> Scene:
  """The project's own textured scene; every other view is held out."""
  records = synthetic.make_records(num_views, height, width)
  train = _select(records, train_views, "train_views")
  test = [r for r in records if int(r["view_index"]) not in set(train_views)]
  return Scene("synthetic", "blender", train, test)


def downsample(scene: Scene, factor: int) -> Scene:
  """The scene at 1/``factor`` of its resolution (box filter), cameras to match.

  Images and masks are averaged over ``factor``×``factor`` blocks (cropped at
  the bottom/right to a multiple of the factor first); the focal lengths and
  principal points of ``intrinsics`` and ``scene_intrinsics`` are divided by
  the factor. With pixel centres at (x + 0.5, y + 0.5) this is exact: the
  centre of each block maps to the centre of its new pixel. Masks keep 255 only
  where the whole block is object, as masked metrics count only those pixels.

  Raises:
    errors.InputError: ``factor`` is not a positive integer, or leaves images
      smaller than 3×3 pixels.
  """
  if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
    raise errors.InputError(f"Downsampling factor must be a positive integer; "
                            f"received {factor!r}.")
  if factor == 1:
    return scene
  scale = np.diag([1.0 / factor, 1.0 / factor, 1.0]).astype(np.float32)

  def one(record: dict) -> dict:
    height, width = np.shape(record["image"])[:2]
    if height // factor < 3 or width // factor < 3:
      raise errors.InputError(
          f"Downsampling {record['file_name']} ({width}×{height} pixels) by "
          f"{factor} leaves less than 3×3 pixels; use a smaller factor.")
    out = dict(record)
    out["image"] = image_ops.to_uint8(
        image_ops.downsample(record["image"], factor, "area"))
    if "mask" in record:  # LLFF records have none
      out["mask"] = image_ops.to_uint8(
          image_ops.downsample(record["mask"], factor, "area"))
    out["intrinsics"] = scale @ np.asarray(record["intrinsics"], np.float32)
    out["scene_intrinsics"] = scale @ np.asarray(record["scene_intrinsics"],
                                                 np.float32)
    return out

  return Scene(scene.name, scene.kind, [one(r) for r in scene.train],
               [one(r) for r in scene.test])
