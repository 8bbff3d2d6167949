"""A scene the project builds itself: textured planes and a textured sphere.

Used by ``make demo`` and by tests and benchmarks that need a multi-view scene
with exact ground truth and no download. Textures are photographs bundled with
scikit-image. Every view is rendered exactly (analytic ray casting with 2×2
supersampling) from any camera, so held-out views have perfect ground truth.

The scene is object-centric with cameras on a spherical cap, like DTU. Its
records carry ``kind="blender"`` (OpenGL camera axes, rays in scene units with
the record's near/far, cone rays), so the standard ray pipeline serves them.

Geometry (scene units, before normalisation): a sphere of radius 0.55 at the
origin; a square card (0.5 × 0.5) at z = −0.6 in front of it, off-centre; a
back wall at z = 0.65. Cameras sit at distance 3 from the origin on directions
within ``max_angle_deg`` of −z, looking at the origin. Rays are bounded by
near = 1.5 and far = 6.0.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from regnerf_tf import camera
from regnerf_tf import scene_kinds

TEXTURES = ("astronaut", "chelsea", "coffee")
NEAR, FAR = 1.5, 6.0
# OpenCV camera axes (x right, y down, z forward) → OpenGL (y up, z backward).
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])


def _texture(name: str, size: int = 64) -> np.ndarray:
  """A bundled photograph, box-downsampled to about ``size`` pixels across.

  Coarse textures keep the scene learnable in a few CPU minutes while still
  being real photographic content.
  """
  try:
    from skimage import data as skdata  # pylint: disable=import-outside-toplevel
  except ImportError as e:  # pragma: no cover - scikit-image is a dependency
    raise ImportError("The synthetic scene needs scikit-image's bundled "
                      "photographs: pip install scikit-image") from e
  image = getattr(skdata, name)()[..., :3].astype(np.float32) / 255.0
  step = max(1, min(image.shape[:2]) // size)
  h, w = (image.shape[0] // step) * step, (image.shape[1] // step) * step
  image = image[:h, :w].reshape(h // step, step, w // step, step, 3)
  return image.mean(axis=(1, 3))


def _bilinear(texture: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Samples ``texture`` [h, w, 3] at u, v ∈ [0, 1] (u along columns)."""
  h, w = texture.shape[:2]
  x = np.clip(u, 0.0, 1.0) * (w - 1)
  y = np.clip(v, 0.0, 1.0) * (h - 1)
  x0 = np.floor(x).astype(int)
  y0 = np.floor(y).astype(int)
  x1 = np.minimum(x0 + 1, w - 1)
  y1 = np.minimum(y0 + 1, h - 1)
  fx = (x - x0)[..., None]
  fy = (y - y0)[..., None]
  top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
  bottom = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
  return top * (1 - fy) + bottom * fy


@dataclasses.dataclass
class SyntheticScene:
  """Textured sphere, card and back wall; render any OpenCV camera exactly."""
  sphere_radius: float = 0.55
  card_centre: tuple[float, float, float] = (-0.55, -0.45, -0.6)
  card_half: float = 0.25
  wall_z: float = 0.65
  wall_half: float = 4.0
  camera_distance: float = 3.0

  def __post_init__(self):
    self._textures = [_texture(n) for n in TEXTURES]

  def _hits(self, origins, dirs):
    """Nearest hit t and colour for rays [..., 3] (dirs unnormalised)."""
    shape = origins.shape[:-1]
    best_t = np.full(shape, np.inf)
    color = np.zeros(shape + (3,))
    # Sphere at the origin.
    a = np.sum(dirs * dirs, -1)
    b = 2 * np.sum(origins * dirs, -1)
    c = np.sum(origins * origins, -1) - self.sphere_radius**2
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore"):
      t_sphere = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a),
                          np.inf)
    t_sphere = np.where(t_sphere > 0, t_sphere, np.inf)
    p = origins + t_sphere[..., None] * dirs
    n = p / self.sphere_radius
    u = 0.5 + np.arctan2(n[..., 0], -n[..., 2]) / (2 * np.pi)
    v = 0.5 + np.arcsin(np.clip(n[..., 1], -1, 1)) / np.pi
    sphere_rgb = _bilinear(self._textures[0], (u - 0.25) * 2.0, v)
    hit = t_sphere < best_t
    best_t = np.where(hit, t_sphere, best_t)
    color = np.where(hit[..., None], sphere_rgb, color)
    # Axis-aligned squares facing −z: (centre, half size, texture, tiling).
    squares = [
        (np.array(self.card_centre), self.card_half, self._textures[1]),
        (np.array([0.0, 0.0, self.wall_z]), self.wall_half, self._textures[2]),
    ]
    for centre, half, tex in squares:
      with np.errstate(divide="ignore", invalid="ignore"):
        t = (centre[2] - origins[..., 2]) / dirs[..., 2]
      p = origins + t[..., None] * dirs
      local = (p[..., :2] - centre[:2]) / half  # in [-1, 1] inside the square
      inside = (t > 0) & np.all(np.abs(local) <= 1.0, -1)
      t = np.where(inside, t, np.inf)
      rgb = _bilinear(tex, 0.5 + 0.5 * local[..., 0], 0.5 + 0.5 * local[..., 1])
      hit = t < best_t
      best_t = np.where(hit, t, best_t)
      color = np.where(hit[..., None], rgb, color)
    return best_t, color

  def render(self, camtoworld: np.ndarray, intrinsics: np.ndarray,
             height: int, width: int, supersample: int = 2
             ) -> tuple[np.ndarray, np.ndarray]:
    """Exact image of an OpenCV camera in scene units.

    Args:
      camtoworld: [3, 4] (scene units, OpenCV axes).
      intrinsics: [3, 3] K.
      height, width: image size.
      supersample: s×s samples per pixel, averaged.

    Returns:
      (rgb float32 [H, W, 3] in [0, 1], depth float32 [H, W]: camera-z depth
      of the pixel centre's hit).
    """
    camtoworld = np.asarray(camtoworld, np.float64)
    k_inv = np.linalg.inv(np.asarray(intrinsics, np.float64))
    offsets = (np.arange(supersample) + 0.5) / supersample
    total = np.zeros((height, width, 3))
    for oy in offsets:
      for ox in offsets:
        xs, ys = np.meshgrid(np.arange(width) + ox, np.arange(height) + oy)
        pix = np.stack([xs, ys, np.ones_like(xs)], -1)
        dirs = (pix @ k_inv.T) @ camtoworld[:, :3].T
        origins = np.broadcast_to(camtoworld[:, 3], dirs.shape)
        _, rgb = self._hits(origins, dirs)
        total += rgb
    xs, ys = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pix = np.stack([xs, ys, np.ones_like(xs)], -1)
    dirs = (pix @ k_inv.T) @ camtoworld[:, :3].T
    t, _ = self._hits(np.broadcast_to(camtoworld[:, 3], dirs.shape), dirs)
    return (total / supersample**2).astype(np.float32), t.astype(np.float32)

  def cameras(self, n: int, max_angle_deg: float = 30.0, seed: int = 0
              ) -> np.ndarray:
    """``n`` OpenCV cameras on a cap around −z, looking at the origin.

    Cameras follow a Fibonacci spiral on the cap (even coverage), so any subset
    of consecutive indices spreads over the cap.

    Returns:
      [n, 3, 4] camera-to-world matrices in scene units.
    """
    rng = np.random.default_rng(seed)
    golden = np.pi * (3.0 - np.sqrt(5.0))
    cos_max = np.cos(np.deg2rad(max_angle_deg))
    poses = []
    for i in range(n):
      cos_t = 1.0 - (1.0 - cos_max) * (i + 0.5) / n
      sin_t = np.sqrt(1.0 - cos_t**2)
      phi = golden * i + rng.uniform(-0.05, 0.05)
      direction = np.array([sin_t * np.cos(phi), sin_t * np.sin(phi), -cos_t])
      centre = self.camera_distance * direction
      poses.append(camera.look_at(-centre, [0.0, 1.0, 0.0], centre))
    return np.stack(poses)


def make_records(num_views: int = 12, height: int = 60, width: int = 80,
                 focal: float | None = None, seed: int = 0,
                 scene: SyntheticScene | None = None) -> list[dict]:
  """The views of the synthetic scene as reader records (see datasets.readers).

  Args:
    num_views: number of cameras.
    height, width: image size.
    focal: focal length in pixels (default: 1.2 × width).
    seed: camera jitter seed.
    scene: the scene (default :class:`SyntheticScene`).

  Returns:
    list of dict records with ``image``, ``mask``, ``has_mask``,
    ``camtoworld`` (OpenGL axes, scene units), ``intrinsics``, ``near``,
    ``far``, ``scene``, ``view_index``, ``file_name``, ``kind`` ("blender"),
    ``scene_camtoworlds``, ``scene_intrinsics``, ``scene_bounds``,
    ``world_transform`` (identity) and ``depth`` (camera-z depth of the pixel
    centre's hit, which is t along the pipeline's rays; inf where nothing is
    hit).
  """
  scene = scene or SyntheticScene()
  focal = 1.2 * width if focal is None else focal
  k = camera.intrinsic_matrix(focal, focal, width / 2.0, height / 2.0)
  opencv = scene.cameras(num_views, seed=seed)
  opengl = opencv.copy()
  opengl[:, :, :3] = opencv[:, :, :3] @ OPENCV_TO_OPENGL
  records = []
  for i in range(num_views):
    rgb, depth = scene.render(opencv[i], k, height, width)
    records.append({
        "image": np.round(rgb * 255).astype(np.uint8),
        "mask": np.full((height, width, 1), 255, np.uint8),
        "has_mask": False,
        "camtoworld": opengl[i].astype(np.float32),
        "intrinsics": k.astype(np.float32),
        "near": np.float32(NEAR), "far": np.float32(FAR),
        "scene": "synthetic", "view_index": np.int32(i),
        "file_name": f"view_{i:03d}.png", "kind": scene_kinds.BLENDER.name,
        "scene_camtoworlds": opengl.astype(np.float32),
        "scene_intrinsics": np.tile(k, (num_views, 1, 1)).astype(np.float32),
        "scene_bounds": np.tile([[NEAR, FAR]], (num_views, 1)).astype(np.float32),
        "world_transform": np.eye(4, dtype=np.float32),
        "depth": depth.astype(np.float32),
    })
  return records
