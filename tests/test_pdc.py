"""The prime-dilated convolution: offsets, the sparse kernel, the forward and its reach."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax.models import pdc

B = 48
NUM_FREQS = 432  # the CQT's 9 octaves at 48 bins per octave


def reference_conv(x, kernel, feature_group_count=1):
  """lax.conv_general_dilated along freq with a dense `[span, in / groups, out]` kernel."""
  return jax.lax.conv_general_dilated(
      x, kernel[None], window_strides=(1, 1), padding="SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=feature_group_count,
      precision=jax.lax.Precision.HIGHEST)


def random_input(seed, shape=(2, 3, 64, 4)):
  return jax.random.normal(jax.random.key(seed), shape)


def test_prime_ratios():
  assert pdc.first_primes(6) == (2, 3, 5, 7, 11, 13)
  ratios = [pdc.prime_ratio(p) for p in pdc.first_primes(6)]
  assert ratios == [2, 1.5, 1.25, 1.75, 1.375, 1.625]


def test_offsets():
  assert pdc.prime_ratio_offsets(48, 3, symmetric=False) == (0, 15, 28, 48)
  assert pdc.prime_ratio_offsets(48, 3, symmetric=True) == (-48, -28, -15, 0, 15, 28, 48)
  assert pdc.prime_ratio_offsets(48, 4, symmetric=False) == (0, 15, 28, 39, 48)
  assert pdc.prime_ratio_offsets(12, 3, symmetric=True) == (-12, -7, -4, 0, 4, 7, 12)
  # At one bin per octave r(5) rounds to 0: duplicates collapse.
  assert pdc.prime_ratio_offsets(1, 3, symmetric=True) == (-1, 0, 1)


def test_dilation_mask():
  offsets = pdc.prime_ratio_offsets(B, 3, symmetric=True)
  mask = pdc.dilation_mask(offsets)
  assert mask.dtype == bool and mask.shape == (97,)
  np.testing.assert_array_equal(np.flatnonzero(mask) - 48, offsets)
  np.testing.assert_array_equal(np.flatnonzero(pdc.dilation_mask((0, 3))), [3, 6])


@pytest.mark.parametrize("call, message", [
    (lambda: pdc.prime_ratio_offsets(0, 3, True), "bins_per_octave"),
    (lambda: pdc.prime_ratio_offsets(48, 0, True), "num_primes"),
    (lambda: pdc.prime_ratio(1), "prime"),
    (lambda: pdc.dilation_mask(()), "empty"),
    (lambda: pdc.dilation_mask((0, 1.5)), "integers"),
    (lambda: pdc.dilation_mask((0, 4, 4)), "distinct"),
    (lambda: pdc.dense_kernel(jnp.ones((2, 3)), (0, 4, 7)), "3 offsets but 2 taps"),
    (lambda: pdc.PrimeDilatedConv((0, 0)).init(jax.random.key(0), jnp.ones((1, 1, 8, 1))),
     "distinct"),
])
def test_bad_arguments(call, message):
  with pytest.raises(ValueError, match=message):
    call()


@pytest.mark.parametrize("features", [None, 5])
def test_params_are_only_the_taps(features):
  offsets = pdc.prime_ratio_offsets(B, 3, symmetric=True)
  x = random_input(0)
  out_channels = 4 if features is None else features
  tap_shape = (7, 4) if features is None else (7, 4, features)
  for use_bias, expected in [(False, {"taps": tap_shape}),
                             (True, {"taps": tap_shape, "bias": (out_channels,)})]:
    layer = pdc.PrimeDilatedConv(offsets, features=features, use_bias=use_bias)
    params = layer.init(jax.random.key(1), x)["params"]
    assert jax.tree.map(jnp.shape, dict(params)) == expected
    assert layer.apply({"params": params}, x).shape == x.shape[:-1] + (out_channels,)


def test_init_scale_uses_tap_fan_in():
  offsets = pdc.prime_ratio_offsets(B, 3, symmetric=True)
  x = jnp.ones((1, 1, 8, 256))
  depthwise = pdc.PrimeDilatedConv(offsets).init(jax.random.key(2), x)["params"]["taps"]
  mixing = pdc.PrimeDilatedConv(offsets, 8).init(jax.random.key(2), x)["params"]["taps"]
  for taps, fan_in in [(depthwise, 7), (mixing, 7 * 256)]:
    bound = 1 / np.sqrt(fan_in)
    assert np.abs(taps).max() <= bound and np.abs(taps).max() > 0.9 * bound


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("features", [None, 6])
def test_forward_matches_dense_masked_conv(symmetric, features):
  offsets = pdc.prime_ratio_offsets(B, 3, symmetric=symmetric)
  x = random_input(3)
  layer = pdc.PrimeDilatedConv(offsets, features=features, use_bias=True,
                               bias_init=jax.nn.initializers.normal(1.0))
  params = layer.init(jax.random.key(4), x)["params"]
  kernel = pdc.dense_kernel(params["taps"], offsets)
  if features is None:
    expected = reference_conv(x, kernel[:, None, :], feature_group_count=x.shape[-1])
  else:
    expected = reference_conv(x, kernel)
  np.testing.assert_allclose(layer.apply({"params": params}, x), expected + params["bias"],
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("features", [None, 6])
def test_gradients_match_dense_masked_conv(symmetric, features):
  """The input's and the taps' gradients, jitted, against the dense convolution's (whose
  kernel gradient, gathered at the taps, is the taps' gradient)."""
  offsets = pdc.prime_ratio_offsets(B, 3, symmetric=symmetric)
  x = random_input(7)
  layer = pdc.PrimeDilatedConv(offsets, features=features)
  params = layer.init(jax.random.key(8), x)["params"]
  cotangent = random_input(9, x.shape[:-1] + (features or x.shape[-1],))
  radius = max(abs(k) for k in offsets)

  def dense(x, kernel):
    if features is None:
      return reference_conv(x, kernel[:, None, :], feature_group_count=x.shape[-1])
    return reference_conv(x, kernel)

  got_x, got_taps = jax.jit(jax.grad(
      lambda x, taps: jnp.sum(layer.apply({"params": {"taps": taps}}, x) * cotangent),
      argnums=(0, 1)))(x, params["taps"])
  want_x, want_kernel = jax.grad(lambda x, kernel: jnp.sum(dense(x, kernel) * cotangent),
                                 argnums=(0, 1))(x, pdc.dense_kernel(params["taps"], offsets))
  np.testing.assert_allclose(got_x, want_x, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(got_taps, want_kernel[np.asarray(offsets) + radius],
                             rtol=1e-4, atol=1e-4)


def test_freq_axis_shorter_than_the_span():
  """Zero padding: a 5-bin input under 97-bin-wide filters still matches the dense conv."""
  offsets = pdc.prime_ratio_offsets(B, 3, symmetric=True)
  x = random_input(5, (1, 2, 5, 3))
  layer = pdc.PrimeDilatedConv(offsets, features=2)
  params = layer.init(jax.random.key(6), x)["params"]
  np.testing.assert_allclose(layer.apply({"params": params}, x),
                             reference_conv(x, pdc.dense_kernel(params["taps"], offsets)),
                             rtol=1e-5, atol=1e-5)


def test_dense_kernel_is_zero_off_mask_and_gradients_stay_on_it():
  offsets = pdc.prime_ratio_offsets(B, 3, symmetric=True)
  mask = pdc.dilation_mask(offsets)
  taps = random_input(7, (7, 4, 3))
  kernel = pdc.dense_kernel(taps, offsets)
  assert kernel.shape == (97, 4, 3)
  assert not np.any(kernel[~mask]) and np.all(kernel[mask] != 0)
  # d kernel / d taps: every kernel entry off the mask is independent of every tap.
  jacobian = jax.jacobian(pdc.dense_kernel)(taps, offsets)
  assert jacobian.shape == (97, 4, 3, 7, 4, 3)
  assert not np.any(jacobian[~mask]) and np.all(np.any(jacobian[mask] != 0, axis=(-3, -2, -1)))

  # The fast forward's gradient is the dense masked conv's, chained through dense_kernel.
  x = random_input(8, (2, 3, 64, 4))
  layer = pdc.PrimeDilatedConv(offsets, features=3)

  def fast_loss(taps):
    return jnp.sum(jnp.sin(layer.apply({"params": {"taps": taps}}, x)))

  def dense_loss(taps):
    return jnp.sum(jnp.sin(reference_conv(x, pdc.dense_kernel(taps, offsets))))

  fast_grad = jax.grad(fast_loss)(taps)
  assert fast_grad.shape == taps.shape
  np.testing.assert_allclose(fast_grad, jax.grad(dense_loss)(taps), rtol=1e-4, atol=1e-4)


def receptive_offsets(num_primes, num_layers=3):
  """Input-bin offsets that one output bin of stacked symmetric PDC layers reads.

  Measured on the network: the gradient of one output bin w.r.t. the input, with positive
  taps so that no paths cancel.
  """
  offsets = pdc.prime_ratio_offsets(B, num_primes, symmetric=True)
  layer = pdc.PrimeDilatedConv(offsets, kernel_init=jax.nn.initializers.ones)
  params = layer.init(jax.random.key(0), jnp.ones((1, 1, NUM_FREQS, 1)))

  def output_bin(x):
    for _ in range(num_layers):
      x = layer.apply(params, x)
    return x[0, 0, centre, 0]

  centre = NUM_FREQS // 2
  reach = jax.grad(output_bin)(jnp.zeros((1, 1, NUM_FREQS, 1)))[0, 0, :, 0]
  reached = set((np.flatnonzero(reach) - centre).tolist())
  sums = {sum(c) for c in itertools.product(offsets, repeat=num_layers)}
  assert reached == sums  # the network reads exactly the sums of num_layers offsets
  return reached


def reaches(reached, harmonic):
  """Whether an offset within one bin of the harmonic's distance B log2 n was reached."""
  return any(abs(d - B * np.log2(harmonic)) <= 1 for d in reached)


def test_three_layers_reach_every_harmonic_with_four_primes():
  reached = receptive_offsets(num_primes=4)
  assert all(reaches(reached, n) for n in range(2, 9))
  assert all(reaches({-d for d in reached}, n) for n in range(2, 9))  # and back down


def test_three_layers_with_three_primes_miss_the_seventh_harmonic():
  """B log2 7 = 134.75, but sums of three of {0, +-15, +-28, +-48} near it are 124 and 144."""
  reached = receptive_offsets(num_primes=3)
  assert all(reaches(reached, n) for n in (2, 3, 4, 5, 6, 8))
  assert not reaches(reached, 7)


@pytest.mark.parametrize("features", [None, 4])
def test_translation_equivariance_along_freq(features):
  offsets = pdc.prime_ratio_offsets(B, 3, symmetric=True)
  shifts = (-11, 15, 30)
  margin = 48 + max(abs(s) for s in shifts)  # the content stays out of the filters' reach
  content = random_input(9, (2, 3, 64, 3))
  x = jnp.pad(content, ((0, 0), (0, 0), (margin, margin), (0, 0)))
  layer = pdc.PrimeDilatedConv(offsets, features=features, use_bias=True,
                               bias_init=jax.nn.initializers.ones)
  params = layer.init(jax.random.key(10), x)
  apply = jax.jit(layer.apply)
  out = apply(params, x)
  interior = slice(margin, -margin)
  for shift in shifts:
    shifted_out = apply(params, jnp.roll(x, shift, axis=2))
    np.testing.assert_allclose(shifted_out[:, :, interior],
                               jnp.roll(out, shift, axis=2)[:, :, interior], rtol=1e-6, atol=1e-6)
  # The filter runs along freq only: shifting time shifts the output in time alone.
  np.testing.assert_allclose(apply(params, jnp.roll(x, 1, axis=1)), jnp.roll(out, 1, axis=1),
                             rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("features", [None, 4])
def test_bfloat16_compute(features):
  offsets = pdc.prime_ratio_offsets(B, 3, symmetric=True)
  x = random_input(11)
  layer = pdc.PrimeDilatedConv(offsets, features=features, use_bias=True,
                               dtype=jnp.bfloat16)
  params = layer.init(jax.random.key(12), x)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  out = layer.apply(params, x)
  assert out.dtype == jnp.bfloat16
  full = pdc.PrimeDilatedConv(offsets, features=features, use_bias=True).apply(params, x)
  np.testing.assert_allclose(out.astype(jnp.float32), full, rtol=0.05, atol=0.05)
