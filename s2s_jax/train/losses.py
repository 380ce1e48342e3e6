"""The training loss and parameter metrics, over all parameters at once.

The logits' layout (`infer.logits.ClassLayout`) pads every parameter's block to
`[num_params, max_classes]`, so each parameter's softmax is one vectorised op.

The loss is the reference's "celoss" (fact sheet section 4.1): per parameter, the cross
entropy against a target divided by ln(num_classes), so a uniform prediction scores 1 for
every parameter; continuous parameters use Gaussian-smoothed targets, discrete ones one-hot.
Per example, the parameter losses are averaged with weights w_k * m_k, where w are the
dataset's gradient-inspired weights and m masks parameters that cannot affect the sound
(those of silent operators, `active_mask`).
Unlike the reference, probabilities are not clipped at 1e-9 (clipping zeroes the gradient of
a confidently wrong class); log-softmax is exact.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from s2s_jax.infer.logits import LEVEL_PARAMS, ClassLayout, padded_logits, predicted_classes

REFERENCE_SIGMA = 0.02  # Gaussian target width in range units: 1.28 bins at K = 64
TRUNCATE_STDS = 4.0  # targets keep bins within 4 std of the label: +-5 bins at K = 64
_EPS = 1e-9  # the reference's guard on the per-example weight sum
# Dexed's exp_scale_data (dx7note.cc): the EXP keyboard level scaling curve by key group.
_EXP_SCALE = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 14, 16, 19, 23, 27, 33, 39, 47, 56, 66,
                       80, 94, 110, 126, 142, 158, 174, 190, 206, 222, 238, 250], np.int32)


def smoothed_targets(labels: jax.Array, layout: ClassLayout,
                     sigma: float = REFERENCE_SIGMA) -> jax.Array:
  """Target distributions for labels [batch, num_params] int -> [batch, num_params, max_classes].

  Continuous parameters: the one-hot label convolved with a Gaussian of std `sigma * K` bins
  (sigma in units of the parameter's range, as the reference's w_j ~ exp(-(j / (K sigma))^2
  / 2)), cut beyond `TRUNCATE_STDS` std, then normalised to sum 1 over the valid bins, so mass
  cut at the range edges goes back to the bins kept. At the default sigma and K = 64 this is
  the reference's kernel exactly (std 1.28 bins, +-5 bins). sigma = 0 gives one-hot targets.
  Discrete parameters are always one-hot. Padding classes get 0. float32, no gradient.
  """
  distance = (jnp.arange(layout.index.shape[1], dtype=jnp.float32)
              - labels[..., None].astype(jnp.float32))
  std = sigma * layout.num_bins
  near = layout.valid & (jnp.abs(distance) <= TRUNCATE_STDS * std)
  # At std = 0 only distance 0 is near, and exp(0) = 1 there: the one-hot.
  gaussian = jnp.where(near, jnp.exp(-0.5 * jnp.square(distance / jnp.maximum(std, 1e-6))), 0.0)
  targets = jnp.where(layout.is_continuous[:, None], gaussian, (distance == 0).astype(jnp.float32))
  return jax.lax.stop_gradient(targets / jnp.sum(targets, axis=-1, keepdims=True))


def parameter_losses(logits: jax.Array, labels: jax.Array, layout: ClassLayout,
                     sigma: float = REFERENCE_SIGMA) -> jax.Array:
  """Normalised cross entropy per parameter: -sum_c q_c ln p_c / ln(num_classes).

  Args:
    logits: [batch, total_classes].
    labels: [batch, num_params] int class indices.
    sigma: Gaussian target width of continuous parameters (see `smoothed_targets`).
  Returns:
    [batch, num_params] float32; 1 for a uniform prediction, 0 for a certain, right one on
    a one-hot target.
  """
  log_probs = jnp.where(layout.valid, jax.nn.log_softmax(padded_logits(logits, layout)), 0.0)
  cross_entropy = -jnp.sum(smoothed_targets(labels, layout, sigma) * log_probs, axis=-1)
  return cross_entropy / jnp.log(layout.num_classes.astype(jnp.float32))


def active_mask(labels: jax.Array, layout: ClassLayout) -> jax.Array:
  """1 where a parameter can affect the sound, 0 where its label is unlearnable.

  An operator is silent, so all its parameters but OUTPUT LEVEL are masked, when its OUTPUT
  LEVEL class is 0 and its keyboard level scaling does not raise it at the played note. In
  Dexed's engine (dx7note.cc) an operator's level is scaleoutlevel(OUTPUT LEVEL), 0 at 0,
  plus ScaleLevel(note + TRANSPOSE - 24, BREAK POINT, depths, curves), computed here exactly.
  Velocity adds at most 7 level units, which stay under the envelope's floor, so at a total
  of 0 or less the operator renders silent whatever its other parameters: bit-exactly, but
  for changes below -50 dB through the multi-operator feedback of algorithms 4 and 6.
  Global parameters and OUTPUT LEVELs are always active. Class 0 of a 0..99 parameter is
  value 0 for K >= 51; at coarser K it also holds values below 49.5 / (K - 1).

  Args:
    labels: [batch, num_params] int class indices.
  Returns:
    [batch, num_params] float32.
  """
  level, break_point, left_depth, right_depth, left_curve, right_curve = (
      jnp.take(labels, layout.level_params[:, i], axis=1) for i in range(len(LEVEL_PARAMS)))
  offset = layout.note + labels[:, layout.transpose, None] - 24 - break_point - 17
  right = offset >= 0
  group = jnp.where(right, offset + 1, 1 - offset) // 3  # keys from the break point, by 3
  bins = layout.num_bins - 1  # depth value: the bin's round(b * 99 / (K - 1))
  depth = (jnp.where(right, right_depth, left_depth) * 198 + bins) // (2 * bins)
  curve = jnp.where(right, right_curve, left_curve)  # -LIN, -EXP, +EXP, +LIN
  linear = (group * depth * 329) >> 12
  exponential = (jnp.asarray(_EXP_SCALE)[jnp.minimum(group, 32)] * depth * 329) >> 15
  boost = jnp.where((curve == 0) | (curve == 3), linear, exponential)
  silent = (level == 0) & ((curve < 2) | (boost == 0))
  return jnp.where(layout.silenceable & silent, 0.0, 1.0)


def weighted_loss(per_param_losses: jax.Array, weights: jax.Array, mask: jax.Array) -> jax.Array:
  """Per-example loss sum_k w_k m_k L_k / (sum_k w_k m_k + eps): [batch, num_params] -> [batch]."""
  weights = weights * mask
  return jnp.sum(weights * per_param_losses, axis=-1) / (jnp.sum(weights, axis=-1) + _EPS)


def loss_and_metrics(logits: jax.Array, labels: jax.Array, weights: jax.Array | None,
                     layout: ClassLayout, *, sigma: float, use_weights: bool,
                     mask_inactive: bool, example_mask: jax.Array | None = None
                     ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The batch-mean training loss and the batch's parameter metrics.

  Args:
    logits: [batch, total_classes].
    labels: [batch, num_params] int class indices.
    weights: [batch, num_params] gradient-inspired weights; ignored (may be None) unless
      `use_weights`, when they must be given.
    sigma: Gaussian target width of continuous parameters (see `smoothed_targets`).
    use_weights: weight parameters by `weights` (else all 1).
    mask_inactive: drop parameters `active_mask` marks unlearnable.
    example_mask: [batch], 1 for real examples and 0 for padding rows (default all 1):
      the loss and every metric average over the real examples only.
  Returns:
    (loss, metrics). loss: scalar float32, the mean over the batch of `weighted_loss`.
    metrics, batch means, so average batches weighted by their sizes:
      loss: the loss above.
      celoss: mean parameter loss with all weights 1 and nothing masked (the reference's
        `valid_celoss`, comparable across `use_weights` / `mask_inactive`).
      accuracy: exact-class accuracy over all parameters and examples.
      continuous_accuracy, discrete_accuracy: the same over each kind of parameter.
      bin_mae: mean |predicted bin - label bin| / (K - 1) over continuous parameters.
    Metrics count every parameter, masked or not, whatever the loss flags (as the reference).
  """
  losses = parameter_losses(logits, labels, layout, sigma)
  if use_weights:
    if weights is None:
      raise ValueError("use_weights needs weights")
    weights = weights.astype(jnp.float32)
  else:
    weights = jnp.ones_like(losses)
  mask = active_mask(labels, layout) if mask_inactive else jnp.ones_like(losses)
  examples = (jnp.ones(losses.shape[:1]) if example_mask is None
              else example_mask.astype(jnp.float32))

  def batch_mean(values: jax.Array) -> jax.Array:  # [batch, ...] -> [...]
    weights = examples.reshape((-1,) + (1,) * (values.ndim - 1))
    return jnp.sum(values * weights, axis=0) / jnp.sum(examples)

  loss = batch_mean(weighted_loss(losses, weights, mask))
  predicted = predicted_classes(logits, layout)
  parameter_accuracy = batch_mean((predicted == labels).astype(jnp.float32))
  continuous = layout.is_continuous.astype(jnp.float32)
  bin_error = jnp.abs(predicted - labels).astype(jnp.float32) / (layout.num_bins - 1)
  return loss, {
      "loss": loss,
      "celoss": jnp.mean(batch_mean(losses)),
      "accuracy": jnp.mean(parameter_accuracy),
      "continuous_accuracy": _mean_over(parameter_accuracy, continuous),
      "discrete_accuracy": _mean_over(parameter_accuracy, 1.0 - continuous),
      "bin_mae": _mean_over(batch_mean(bin_error), continuous),
  }


def _mean_over(values: jax.Array, selected: jax.Array) -> jax.Array:
  """Mean of values [num_params] over the selected (1.0) parameters."""
  return jnp.sum(values * selected) / jnp.sum(selected)
