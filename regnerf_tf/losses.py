"""RegNeRF's loss terms and schedules, as pure functions (float32).

Step conventions: schedules take the 1-based step of the release (the first
update is step 1). Keras' ``optimizer.iterations`` counts from 0, so callers
pass ``iterations + 1``.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from regnerf_tf import errors


def color_loss(rgb_pred, rgb_target, mask=None) -> tf.Tensor:
  """The release's colour loss: squared error summed over channels, mean over rays.

  This is 3× the per-element MSE (reference pitfall P2); the depth-smoothness
  weights were tuned against this scale.

  Args:
    rgb_pred, rgb_target: [N, 3].
    mask: optional [N] or [N, 1] per-ray weights (mean is over rays).

  Returns:
    scalar.
  """
  sq = tf.reduce_sum(tf.square(tf.cast(rgb_pred, tf.float32)
                               - tf.cast(rgb_target, tf.float32)), axis=-1)
  if mask is not None:
    sq = sq * tf.reshape(tf.cast(mask, tf.float32), tf.shape(sq))
  return tf.reduce_mean(sq)


def mse_to_psnr(mse) -> tf.Tensor:
  """PSNR in dB for images in [0, 1] from a per-element mean squared error."""
  return -10.0 / math.log(10.0) * tf.math.log(tf.cast(mse, tf.float32))


def depth_tv(depth, acc=None, acc_weighting: float = 1.0) -> tf.Tensor:
  """Depth smoothness on patches: mean squared differences to right and lower
  neighbours over the (S−1)×(S−1) top-left pixels.

  e(i, j) = (D(i,j) − D(i,j+1))² + (D(i,j) − D(i+1,j))², optionally weighted by
  ``acc_weighting · stop_gradient(acc(i, j))``.

  Args:
    depth: [P, S, S] expected depth of the patch rays.
    acc: [P, S, S] accumulated opacity (used when ``acc_weighting > 0``).
    acc_weighting: multiplier of the accumulation weights; 0 = unweighted.

  Returns:
    scalar: the mean over P·(S−1)² entries.
  """
  depth = tf.cast(depth, tf.float32)
  d00 = depth[:, :-1, :-1]
  d01 = depth[:, :-1, 1:]
  d10 = depth[:, 1:, :-1]
  err = tf.square(d00 - d01) + tf.square(d00 - d10)
  if acc is not None and acc_weighting > 0:
    err = err * acc_weighting * tf.stop_gradient(
        tf.cast(acc, tf.float32)[:, :-1, :-1])
  return tf.reduce_mean(err)


def depth_tv_weight(step, start: float, end: float, decay_steps: int) -> tf.Tensor:
  """Linear decay start → end over ``decay_steps``, then constant ``end``.

  Args:
    step: 1-based step (scalar, int or tensor).

  Returns:
    scalar float32.
  """
  if decay_steps <= 0:
    return tf.constant(end, tf.float32)
  s = tf.clip_by_value(tf.cast(step, tf.float32) / float(decay_steps), 0.0, 1.0)
  return start * (1.0 - s) + end * s


def occlusion_loss(density, rgb=None, reg_range: int = 10,
                   wb_prior: bool = False, wb_range: int = 15) -> tf.Tensor:
  """FreeNeRF's occlusion regulariser: density right in front of the cameras.

  mean over all (ray, sample) entries of density · mask, where mask = 1 for
  the first ``reg_range`` samples of every ray and, with ``wb_prior`` (DTU's
  black/white backgrounds), also for any of the first ``wb_range`` samples
  whose predicted colour (channel mean) is > 0.99 or < 0.01; 0 elsewhere. The
  mask carries no gradient.

  Args:
    density: [N, S] per-sample density (fine level).
    rgb: [N, S, 3] per-sample colour; needed only with ``wb_prior``.
    reg_range: K, the samples always penalised.
    wb_prior: add the black/white-background samples.
    wb_range: how many leading samples the background prior looks at.

  Returns:
    scalar float32.
  """
  density = tf.cast(density, tf.float32)
  index = tf.range(tf.shape(density)[-1])
  mask = index < reg_range
  if wb_prior:
    if rgb is None:
      raise errors.InputError("occlusion_loss(wb_prior=True) needs the "
                              "per-sample colours rgb [N, S, 3].")
    mean = tf.reduce_mean(tf.cast(rgb, tf.float32), axis=-1)
    background = tf.logical_or(mean > 0.99, mean < 0.01)
    mask = tf.logical_or(mask, tf.logical_and(background, index < wb_range))
  return tf.reduce_mean(density * tf.cast(mask, tf.float32))


def log_linear_lr(step, lr_init: float, lr_final: float, max_steps: int,
                  delay_steps: int = 0, delay_mult: float = 1.0) -> tf.Tensor:
  """Log-linear learning-rate decay with a sine warm-up (the release's schedule).

  lr = exp((1 − s)·log(lr_init) + s·log(lr_final)), s = clip(step/max_steps, 0, 1),
  times delay_mult + (1 − delay_mult)·sin(π/2·clip(step/delay_steps, 0, 1))
  when ``delay_steps > 0``.

  Args:
    step: 1-based step.

  Returns:
    scalar float32.
  """
  step = tf.cast(step, tf.float32)
  s = tf.clip_by_value(step / float(max_steps), 0.0, 1.0)
  lr = tf.exp((1.0 - s) * math.log(lr_init) + s * math.log(lr_final))
  if delay_steps > 0:
    warm = delay_mult + (1.0 - delay_mult) * tf.sin(
        0.5 * math.pi * tf.clip_by_value(step / float(delay_steps), 0.0, 1.0))
    lr = lr * warm
  return lr


@keras.saving.register_keras_serializable(package="regnerf_tf")
class LogLinearSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """:func:`log_linear_lr` as a Keras schedule over ``optimizer.iterations``.

  Keras passes the 0-based iteration count; the release's 1-based step is
  ``iterations + 1``, so ``schedule(0)`` is the release's learning rate at step 1.
  """

  def __init__(self, lr_init: float, lr_final: float, max_steps: int,
               delay_steps: int = 0, delay_mult: float = 1.0):
    self.lr_init = float(lr_init)
    self.lr_final = float(lr_final)
    self.max_steps = int(max_steps)
    self.delay_steps = int(delay_steps)
    self.delay_mult = float(delay_mult)

  def __call__(self, step):
    return log_linear_lr(tf.cast(step, tf.float32) + 1.0, self.lr_init,
                         self.lr_final, self.max_steps, self.delay_steps,
                         self.delay_mult)

  def get_config(self):
    return {"lr_init": self.lr_init, "lr_final": self.lr_final,
            "max_steps": self.max_steps, "delay_steps": self.delay_steps,
            "delay_mult": self.delay_mult}


def clip_gradients(grads, clip_value: float, clip_norm: float):
  """Element-wise clip to [−clip_value, clip_value], then scale to global norm
  ≤ clip_norm (each disabled by 0). ``None`` gradients pass through.

  Returns:
    (clipped gradients, global norm before the norm clip).
  """
  if clip_value > 0:
    grads = [None if g is None else tf.clip_by_value(g, -clip_value, clip_value)
             for g in grads]
  present = [g for g in grads if g is not None]
  norm = tf.linalg.global_norm(present) if present else tf.constant(0.0)
  if clip_norm > 0 and present:
    scale = tf.minimum(1.0, clip_norm / (norm + 1e-8))
    grads = [None if g is None else g * tf.cast(scale, g.dtype) for g in grads]
  return grads, norm
