"""The padded class layout, smoothed targets, normalised cross entropy, masking and metrics."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from s2s_jax.audio.clip import ClipSpec
from s2s_jax.infer import logits as logits_lib
from s2s_jax.synth import generate
from s2s_jax.synth import params
from s2s_jax.synth.space import ParameterSpace
from s2s_jax.train import losses

SPACE = ParameterSpace()
OFFSETS = SPACE.class_offsets
BATCH = 8


@pytest.fixture(scope="module")
def layout():
  return logits_lib.ClassLayout.create(SPACE)


@pytest.fixture(scope="module")
def labels():
  rng = np.random.default_rng(0)
  return jnp.asarray(rng.integers(0, SPACE.num_classes, size=(BATCH, SPACE.num_params)),
                     jnp.int32)


@pytest.fixture(scope="module")
def logits():
  rng = np.random.default_rng(1)
  return jnp.asarray(3.0 * rng.standard_normal((BATCH, SPACE.total_classes)), jnp.float32)


def one_hot_logits(labels, scale=100.0):
  """Flat logits [batch, total_classes] putting `scale` on each label's class."""
  flat = np.zeros((labels.shape[0], SPACE.total_classes), np.float32)
  flat[np.arange(labels.shape[0])[:, None], OFFSETS[:-1] + np.asarray(labels)] = scale
  return jnp.asarray(flat)


def reference_target(label, n, sigma=0.02, radius=5):
  """The reference's smoothed target: one-hot (*) kernel over +-5 bins, L1-renormalised."""
  j = np.arange(-radius, radius + 1)
  kernel = np.exp(-0.5 * (j / (n * sigma)) ** 2)
  kernel /= kernel.sum()
  target = np.convolve(np.eye(n)[label], kernel, mode="same")
  return target / target.sum()


def test_layout_gathers_each_parameter_block(layout, logits):
  padded = np.asarray(logits_lib.padded_logits(logits, layout))
  assert layout.index.shape == (SPACE.num_params, SPACE.num_classes.max())
  for k, n in enumerate(SPACE.num_classes):
    np.testing.assert_array_equal(padded[:, k, :n],
                                  np.asarray(logits)[:, OFFSETS[k]:OFFSETS[k + 1]])
    assert np.all(np.isneginf(padded[:, k, n:]))
  np.testing.assert_array_equal(np.asarray(layout.valid).sum(), SPACE.total_classes)


def test_targets_are_distributions_and_discrete_ones_are_one_hot(layout, labels):
  targets = np.asarray(losses.smoothed_targets(labels, layout))
  np.testing.assert_allclose(targets.sum(-1), 1.0, rtol=1e-6)
  assert np.all(targets[:, ~np.asarray(layout.valid)] == 0)
  np.testing.assert_array_equal(targets.argmax(-1), np.asarray(labels))
  discrete = ~SPACE.is_continuous
  one_hot = np.eye(targets.shape[-1])[np.asarray(labels)]
  np.testing.assert_array_equal(targets[:, discrete], one_hot[:, discrete])
  np.testing.assert_array_equal(np.asarray(losses.smoothed_targets(labels, layout, 0.0)), one_hot)


def test_targets_match_the_reference_kernel(layout):
  k = SPACE.names.index("OP1 OUTPUT LEVEL")
  for label in (0, 2, 5, 31, 60, 63):
    labels = jnp.full((1, SPACE.num_params), label, jnp.int32)
    target = np.asarray(losses.smoothed_targets(labels, layout))[0, k, :64]
    np.testing.assert_allclose(target, reference_target(label, 64), rtol=1e-5, atol=1e-7)


def test_targets_are_symmetric_with_std_sigma_k(layout):
  for num_bins, sigma in ((64, 0.02), (64, 0.05), (32, 0.1)):
    space = ParameterSpace(num_bins)
    layout_k = logits_lib.ClassLayout.create(space)
    k = space.names.index("LFO SPEED")
    labels = jnp.full((1, space.num_params), num_bins // 2, jnp.int32)
    target = np.asarray(losses.smoothed_targets(labels, layout_k, sigma))[0, k, :num_bins]
    offsets = np.arange(num_bins) - num_bins // 2
    near = np.abs(offsets) <= 8
    np.testing.assert_allclose(target[near], target[near][::-1], rtol=1e-6)
    assert np.sum(target * offsets) == pytest.approx(0.0, abs=1e-5)
    std = np.sqrt(np.sum(target * offsets ** 2))
    assert std == pytest.approx(sigma * num_bins, rel=0.02)


def test_edge_targets_keep_their_mass(layout):
  k = SPACE.names.index("OP1 EG RATE 1")
  labels = jnp.zeros((1, SPACE.num_params), jnp.int32)
  target = np.asarray(losses.smoothed_targets(labels, layout))[0, k, :64]
  kernel = np.exp(-0.5 * (np.arange(6) / 1.28) ** 2)
  np.testing.assert_allclose(target[:6], kernel / kernel.sum(), rtol=1e-5)
  assert np.all(target[6:] == 0)
  middle = np.asarray(losses.smoothed_targets(labels + 32, layout))[0, k, 32]
  assert target[0] > middle


def test_hard_cross_entropy_matches_optax_per_parameter(layout, logits, labels):
  got = np.asarray(losses.parameter_losses(logits, labels, layout, sigma=0.0))
  flat, labels = np.asarray(logits), np.asarray(labels)
  for n in np.unique(SPACE.num_classes):  # one optax call per block size, on all its blocks
    ks = np.flatnonzero(SPACE.num_classes == n)
    blocks = np.stack([flat[:, OFFSETS[k]:OFFSETS[k + 1]] for k in ks], axis=1)
    expected = optax.softmax_cross_entropy(blocks, np.eye(n)[labels[:, ks]]) / np.log(n)
    np.testing.assert_allclose(got[:, ks], expected, rtol=1e-5, atol=1e-6)


def test_smoothed_cross_entropy_matches_optax_per_parameter(layout, logits, labels):
  got = np.asarray(losses.parameter_losses(logits, labels, layout))
  flat, labels = np.asarray(logits), np.asarray(labels)
  for n in np.unique(SPACE.num_classes):  # one optax call per block size, on all its blocks
    ks = np.flatnonzero(SPACE.num_classes == n)
    blocks = np.stack([flat[:, OFFSETS[k]:OFFSETS[k + 1]] for k in ks], axis=1)
    targets = np.stack([np.stack([reference_target(int(y), n) for y in labels[:, k]])
                        if SPACE.is_continuous[k] else np.eye(n)[labels[:, k]] for k in ks],
                       axis=1)
    expected = optax.softmax_cross_entropy(blocks, targets) / np.log(n)
    np.testing.assert_allclose(got[:, ks], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sigma", [0.0, 0.02])
def test_uniform_logits_score_one(layout, labels, sigma):
  uniform = jnp.zeros((BATCH, SPACE.total_classes))
  np.testing.assert_allclose(losses.parameter_losses(uniform, labels, layout, sigma), 1.0,
                             rtol=1e-6)
  weights = jnp.asarray(np.random.default_rng(2).uniform(0, 3, labels.shape), jnp.float32)
  loss, metrics = losses.loss_and_metrics(uniform, labels, weights, layout, sigma=sigma,
                                          use_weights=True, mask_inactive=True)
  assert float(loss) == pytest.approx(1.0, rel=1e-6)
  assert float(metrics["celoss"]) == pytest.approx(1.0, rel=1e-6)


def test_perfect_logits_score_zero_and_full_accuracy(layout, labels):
  loss, metrics = losses.loss_and_metrics(one_hot_logits(labels), labels, None, layout,
                                          sigma=0.0, use_weights=False, mask_inactive=False)
  assert float(loss) == pytest.approx(0.0, abs=1e-6)
  for name in ("accuracy", "continuous_accuracy", "discrete_accuracy"):
    assert float(metrics[name]) == 1.0
  assert float(metrics["bin_mae"]) == 0.0
  np.testing.assert_array_equal(logits_lib.predicted_classes(one_hot_logits(labels), layout),
                                labels)


def test_metrics_count_errors(layout, labels):
  """Shift every continuous prediction by 2 bins (or -2) and one discrete parameter by 1."""
  cont = SPACE.is_continuous
  shifted = np.asarray(labels).copy()
  shifted[:, cont] = np.where(shifted[:, cont] < 2, shifted[:, cont] + 2, shifted[:, cont] - 2)
  k = SPACE.names.index("LFO WAVE")
  shifted[:, k] = (shifted[:, k] + 1) % 6
  _, metrics = losses.loss_and_metrics(one_hot_logits(shifted), labels, None, layout,
                                       sigma=0.0, use_weights=False, mask_inactive=False)
  assert float(metrics["continuous_accuracy"]) == 0.0
  assert float(metrics["discrete_accuracy"]) == pytest.approx(1 - 1 / (~cont).sum())
  assert float(metrics["accuracy"]) == pytest.approx(((~cont).sum() - 1) / SPACE.num_params)
  assert float(metrics["bin_mae"]) == pytest.approx(2 / 63)


def test_zero_weight_removes_a_parameter(layout, logits, labels):
  k = SPACE.names.index("FEEDBACK")
  weights = np.ones(labels.shape, np.float32)
  weights[:, k] = 0.0

  def loss_fn(flat):
    return losses.loss_and_metrics(flat, labels, jnp.asarray(weights), layout, sigma=0.02,
                                   use_weights=True, mask_inactive=False)[0]

  loss, grad = jax.value_and_grad(loss_fn)(logits)
  assert np.all(grad[:, OFFSETS[k]:OFFSETS[k + 1]] == 0)
  assert np.any(grad[:, OFFSETS[k + 1]:] != 0)
  per_param = np.asarray(losses.parameter_losses(logits, labels, layout))
  expected = np.delete(per_param, k, axis=1).mean()
  assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_weights_shift_the_loss_towards_heavy_parameters(layout, logits, labels):
  per_param = losses.parameter_losses(logits, labels, layout)
  ones = jnp.ones_like(per_param)
  np.testing.assert_allclose(losses.weighted_loss(per_param, 3 * ones, ones),
                             per_param.mean(-1), rtol=1e-6)
  worst = per_param == per_param.max(-1, keepdims=True)
  heavier = losses.weighted_loss(per_param, jnp.where(worst, 10.0, 1.0), ones)
  assert np.all(heavier > per_param.mean(-1))


EXP_SCALE_DATA = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 14, 16, 19, 23, 27, 33, 39, 47, 56, 66, 80,
                  94, 110, 126, 142, 158, 174, 190, 206, 222, 238, 250]


def scale_level(note, break_point, left_depth, right_depth, left_curve, right_curve):
  """Dexed's ScaleLevel (dx7note.cc), in plain Python."""
  def curve(group, depth, kind):
    if kind in (0, 3):
      scale = (group * depth * 329) >> 12
    else:
      scale = (EXP_SCALE_DATA[min(group, 32)] * depth * 329) >> 15
    return -scale if kind < 2 else scale
  offset = note - break_point - 17
  if offset >= 0:
    return curve((offset + 1) // 3, right_depth, right_curve)
  return curve((1 - offset) // 3, left_depth, left_curve)


def set_value(labels, name, value):
  """Labels [batch, num_params] with parameter `name` set to the class of DX7 `value`."""
  labels = np.array(labels)
  k = SPACE.names.index(name)
  labels[:, k] = np.floor(value * 63 / 99 + 0.5) if SPACE.is_continuous[k] else value
  return jnp.asarray(labels)


def init_labels(batch=2):
  """INIT VOICE labels (no keyboard level scaling) with every operator at level 10."""
  labels = jnp.asarray(np.repeat(SPACE.encode(params.INIT_VOICE)[None], batch, axis=0))
  for op in range(1, 7):
    labels = set_value(labels, f"OP{op} OUTPUT LEVEL", 10)
  return labels


def operator_params(op):
  """[num_params] bool: the parameters of operator `op` but its OUTPUT LEVEL."""
  return np.array([params.operator_of(p) == op and not p.name.endswith("OUTPUT LEVEL")
                   for p in SPACE.params])


def test_layout_plays_the_rendered_note(layout):
  assert layout.note == ClipSpec().note


def test_silent_operator_masks_its_other_parameters(layout):
  labels = np.array(init_labels())
  labels[0, SPACE.names.index("OP3 OUTPUT LEVEL")] = 0
  mask = np.asarray(losses.active_mask(jnp.asarray(labels), layout))
  assert operator_params(3).sum() == 20
  np.testing.assert_array_equal(mask[0], ~operator_params(3))
  np.testing.assert_array_equal(mask[1], 1.0)


def test_init_voice_masks_every_operator_but_op1(layout):
  labels = jnp.asarray(SPACE.encode(params.INIT_VOICE)[None])
  mask = np.asarray(losses.active_mask(labels, layout))[0]
  np.testing.assert_array_equal(mask, ~np.any([operator_params(op) for op in range(2, 7)], 0))


def test_keyboard_scaling_can_wake_a_silent_operator(layout):
  silent = set_value(init_labels(1), "OP3 OUTPUT LEVEL", 0)
  silent = set_value(silent, "OP3 BREAK POINT", 30)  # note 60 is right of 30 + 17
  k = SPACE.names.index("OP3 F COARSE")

  def active(**values):
    labels = silent
    for name, value in values.items():
      labels = set_value(labels, f"OP3 {name.replace('_', ' ')}", value)
    return bool(losses.active_mask(labels, layout)[0, k])

  assert not active()
  assert active(R_SCALE_DEPTH=50, R_KEY_SCALE=3)  # +LIN
  assert active(R_SCALE_DEPTH=50, R_KEY_SCALE=2)  # +EXP
  assert not active(R_SCALE_DEPTH=50, R_KEY_SCALE=0)  # -LIN
  assert not active(L_SCALE_DEPTH=99, L_KEY_SCALE=3)  # the other side of the break point
  assert not active(R_SCALE_DEPTH=1, R_KEY_SCALE=2)  # +EXP, too shallow to add a level
  transposed_down = set_value(silent, "TRANSPOSE", 0)  # plays note 36: left of the break point
  transposed_down = set_value(transposed_down, "OP3 L SCALE DEPTH", 99)
  transposed_down = set_value(transposed_down, "OP3 L KEY SCALE", 3)
  assert bool(losses.active_mask(transposed_down, layout)[0, k])


def test_mask_matches_dexed_scale_level(layout):
  """Against a plain port of dx7note.cc on random labels, half the operators at level 0."""
  rng = np.random.default_rng(4)
  labels = rng.integers(0, SPACE.num_classes, size=(256, SPACE.num_params))
  levels = [SPACE.names.index(f"OP{op} OUTPUT LEVEL") for op in range(1, 7)]
  labels[:, levels] *= rng.integers(0, 2, size=(256, 6))
  mask = np.asarray(losses.active_mask(jnp.asarray(labels, jnp.int32), layout))
  values = SPACE.class_values(labels)
  value = {name: values[:, k] for k, name in enumerate(SPACE.names)}
  for op in range(1, 7):
    k = SPACE.names.index(f"OP{op} F COARSE")
    for i in range(len(labels)):
      boost = scale_level(60 + value["TRANSPOSE"][i] - 24, *(
          value[f"OP{op} {name}"][i] for name in logits_lib.LEVEL_PARAMS[1:]))
      assert mask[i, k] == (value[f"OP{op} OUTPUT LEVEL"][i] > 0 or boost > 0)
  assert 0.2 < mask.mean() < 0.9


def test_masked_operators_render_silent(layout, renderer):
  """Changing a masked operator leaves Dexed's render bit-identical.

  Not in algorithms 4 and 6 (3 and 5 here), whose multi-operator feedback lets such a change
  through below -50 dB.
  """
  rng = np.random.default_rng(6)
  checked = 0
  while checked < 12:
    voice = generate.sample_voice(rng, algorithm=int(rng.choice([1, 2, 5, 8, 16, 32])))
    op = int(rng.integers(1, 7))
    voice[params.PARAM_BY_NAME[f"OP{op} OUTPUT LEVEL"].voice_byte] = 0
    mask = np.asarray(losses.active_mask(jnp.asarray(SPACE.encode(voice)[None]), layout))[0]
    if mask[SPACE.names.index(f"OP{op} F COARSE")]:
      continue
    changed = voice.copy()
    for name, value in (("F COARSE", 7), ("EG LEVEL 2", 99), ("EG RATE 1", 20)):
      changed[params.PARAM_BY_NAME[f"OP{op} {name}"].voice_byte] = value
    np.testing.assert_array_equal(renderer.render(voice), renderer.render(changed))
    checked += 1


def test_masked_loss_ignores_inactive_parameters(layout, logits, labels):
  silenced = np.asarray(labels).copy()
  silenced[:, SPACE.names.index("OP2 OUTPUT LEVEL")] = 0
  silenced = jnp.asarray(silenced)
  mask = losses.active_mask(silenced, layout)

  def loss_fn(flat):
    return losses.loss_and_metrics(flat, silenced, None, layout, sigma=0.02,
                                   use_weights=False, mask_inactive=True)[0]

  grad = np.asarray(jax.grad(loss_fn)(logits))
  for k in np.flatnonzero(np.asarray(mask[0]) == 0):
    assert np.all(grad[:, OFFSETS[k]:OFFSETS[k + 1]] == 0)


def test_jit_matches_eager_and_gradients_are_finite(layout, logits, labels):
  weights = jnp.asarray(np.random.default_rng(3).uniform(0, 3, labels.shape), jnp.float32)
  fn = functools.partial(losses.loss_and_metrics, sigma=0.02, use_weights=True,
                         mask_inactive=True)
  eager = fn(logits, labels, weights, layout)
  jitted = jax.jit(fn)(logits, labels, weights, layout)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), eager, jitted)
  extreme = logits.at[:, ::7].set(1e4)
  grad = jax.jit(jax.grad(lambda x: fn(x, labels, weights, layout)[0]))(extreme)
  assert grad.shape == logits.shape
  assert np.all(np.isfinite(grad))
  assert np.all(np.isfinite(eager[0]))
