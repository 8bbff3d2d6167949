"""Step mechanics: from a loss to updated weights, on one device or many.

What one training step does with the total of :mod:`regnerf_tf.objective`:

1. gradients of the batch, or of ``train.micro_batches`` parts of it summed in
   a sequential loop (:func:`batch_gradients`: the same mean, a part's
   activations alive at a time);
2. the sum over replicas, then the release's clipping of the global gradient
   by value and by norm (:func:`reduce_and_clip`);
3. the update, skipped when the loss or a gradient is not finite on any
   replica, so that only the step counter advances and data and schedules stay
   aligned with an uninterrupted run (:func:`apply_if_finite`).

Randomness is stateless: a step's seed is a function of the config's seed, the
step and the replica (:func:`step_seed`). :func:`make_optimizer` is Adam with
the release's learning-rate schedule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from regnerf_tf import losses

# Terms that are averaged as mean squared errors over micro-batches.
_PSNR_TERMS = ("psnr", "psnr_coarse")


def make_optimizer(config) -> keras.optimizers.Optimizer:
  """Adam with the log-linear schedule and warm-up of ``config.train``.

  Gradient clipping is done by :func:`reduce_and_clip` (after the
  cross-replica reduction), not by the optimizer.
  """
  t = config.train
  schedule = losses.LogLinearSchedule(t.lr_init, t.lr_final, t.max_steps,
                                      t.lr_delay_steps, t.lr_delay_mult)
  return keras.optimizers.Adam(learning_rate=schedule, beta_1=t.adam_beta1,
                               beta_2=t.adam_beta2, epsilon=t.adam_epsilon)


def replica_info() -> tuple[tf.Tensor, int]:
  """(this replica's id, number of replicas in sync)."""
  ctx = tf.distribute.get_replica_context()
  if ctx is None:  # cross-replica context (should not happen in a step)
    return tf.constant(0, tf.int32), 1
  return (tf.cast(ctx.replica_id_in_sync_group, tf.int32),
          ctx.num_replicas_in_sync)


def step_seed(seed: int, step, replica_id) -> tf.Tensor:
  """The shape-[2] stateless seed of 1-based ``step`` on ``replica_id``."""
  base = tf.constant([seed, 0], tf.int64)
  folded = tf.random.experimental.stateless_fold_in(
      base, tf.cast(step, tf.int64))
  return tf.random.experimental.stateless_fold_in(
      folded, tf.cast(replica_id, tf.int64))


LossFn = Callable[[dict, tf.Tensor], dict]


def _gradients(loss_fn: LossFn, optimizer, variables: Sequence[tf.Variable],
               data, seed, num_replicas: int):
  """(gradients, loss terms) of one batch."""
  with tf.GradientTape() as tape:
    terms = loss_fn(data, seed)
    # Keras sums gradients over replicas: scale for a global mean.
    scaled = optimizer.scale_loss(terms["loss"] / num_replicas)
  grads = tape.gradient(scaled, variables)
  return [tf.zeros_like(v) if g is None else g
          for g, v in zip(grads, variables)], terms


def batch_gradients(loss_fn: LossFn, optimizer,
                    variables: Sequence[tf.Variable], data, seed,
                    num_replicas: int, parts: int = 1,
                    keys: Sequence[str] | None = None):
  """(gradients, loss terms) of a per-replica batch.

  Args:
    loss_fn: ``(batch, seed) -> terms`` with the total in ``terms["loss"]``.
    optimizer: the Keras optimizer (for its loss scaling).
    variables: the trained variables.
    data: the batch (nested dict of tensors with a leading batch axis).
    seed: shape-[2] stateless seed of the step and replica.
    num_replicas: replicas in sync (the loss is divided by it).
    parts: micro-batches; with more than one, ``data`` is split along its
      leading axis and the parts' gradients and terms are averaged in a
      sequential ``while_loop`` that keeps one part's activations alive at a
      time. Every loss term is a mean over rays or whole patches, so the
      mean of the parts equals the batch's (up to the per-part jitter). PSNRs
      are recomputed from the mean squared errors.
    keys: the names of ``loss_fn``'s terms (needed when ``parts`` > 1, to
      set up the loop's running means).

  Returns:
    (list of gradients, dict of terms).
  """
  if parts == 1:
    return _gradients(loss_fn, optimizer, variables, data, seed, num_replicas)
  split = tf.nest.map_structure(
      lambda x: tf.reshape(x, tf.concat([[parts, -1], tf.shape(x)[1:]], 0)),
      data)
  if keys is None:
    raise ValueError(f"batch_gradients with parts={parts} needs the names "
                     "of the loss terms (keys=...) to average them.")

  def body(i, grads, terms):
    part = tf.nest.map_structure(lambda x: x[i], split)
    part_seed = tf.random.experimental.stateless_fold_in(seed, i)
    g, t = _gradients(loss_fn, optimizer, variables, part, part_seed,
                      num_replicas)
    for key in _PSNR_TERMS:  # average MSEs, not PSNRs
      t[key] = tf.pow(10.0, -t[key] / 10.0)
    return (i + 1, [a + b / parts for a, b in zip(grads, g)],
            {k: terms[k] + t[k] / parts for k in terms})

  _, grads, terms = tf.while_loop(
      lambda i, *_: i < parts, body,
      (tf.constant(0), [tf.zeros_like(v) for v in variables],
       {k: tf.zeros([]) for k in keys}),
      parallel_iterations=1)
  for key in _PSNR_TERMS:
    terms[key] = -10.0 * tf.math.log(terms[key]) / tf.math.log(10.0)
  return grads, terms


def reduce_and_clip(grads, loss, train_config, num_replicas: int):
  """Sums ``grads`` over replicas, then clips them as the release does.

  The optimizer's own SUM all-reduce afterwards sees g/N on every replica and
  restores g. Finiteness is checked before clipping, which would turn an inf
  into a finite value.

  Returns:
    (clipped gradients, global norm before clipping, whether the loss on
    every replica and every gradient are finite).
  """
  ctx = tf.distribute.get_replica_context()
  if num_replicas > 1:
    grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
  bad = tf.cast(tf.logical_not(tf.math.is_finite(loss)), tf.float32)
  if num_replicas > 1:
    bad = ctx.all_reduce(tf.distribute.ReduceOp.SUM, bad)
  finite = tf.logical_and(
      tf.equal(bad, 0.0),
      tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]))
  grads, norm = losses.clip_gradients(grads, train_config.grad_clip_value,
                                      train_config.grad_clip_norm)
  if num_replicas > 1:
    grads = [g / num_replicas for g in grads]
  return grads, norm, finite


def apply_if_finite(optimizer, finite, grads, variables) -> None:
  """``optimizer.apply`` if ``finite``, else only advances its step counter.

  ``finite`` must agree on every replica. Mirrored strategies do not allow a
  cross-replica synchronisation (the optimizer's ``merge_call``) inside a
  ``tf.cond`` taken in a replica context, so there the condition is taken in
  the cross-replica context, the way Keras' LossScaleOptimizer does it.
  """

  def skip():
    optimizer.iterations.assign_add(1)

  ctx = tf.distribute.get_replica_context()
  if (ctx is None or not tf.distribute.has_strategy()
      or tf.__internal__.distribute.strategy_supports_no_merge_call()):
    tf.cond(finite, lambda: optimizer.apply(grads, variables), skip)
    return

  def cross_replica(distribution, finite, grads, variables):
    first = distribution.experimental_local_results(finite)[0]

    def apply():
      distribution.extended.call_for_each_replica(optimizer.apply,
                                                  args=(grads, variables))

    tf.cond(first, apply, skip)

  ctx.merge_call(cross_replica, args=(finite, grads, variables))
