"""The multimodal network: grouped layers, the head's layout, branches, precision, real data."""


import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from s2s_jax import config_file
from s2s_jax.audio import storage
from s2s_jax.audio.features import FeatureBanks, featurise
from s2s_jax.audio.spec import FeatureSpec
from s2s_jax.data import reader
from s2s_jax.data import recipes
from s2s_jax.models import backbones
from s2s_jax.models import head as H
from s2s_jax.models import sound2synth
from s2s_jax.models import synthetic
from s2s_jax.models.layers import (GroupedDense, adaptive_max_pool, leaky_relu, max_pool,
                                   region_max)
from s2s_jax.synth.space import ParameterSpace

SPACE = ParameterSpace()


def tiny_config():
  return config_file.load("configs/t6.py:tiny")


# The clip `t6.py:tiny` is trained on (the `tiny` dataset's: 1 s, 94 frames), not the paper's
# 4 s: the same networks, a quarter of the frames.
TINY_SPEC = FeatureSpec(clip=recipes.recipe("tiny").clip)


@pytest.fixture(scope="module")
def features():
  return synthetic.random_features(2, TINY_SPEC)


@pytest.fixture(scope="module")
def tiny_variables(features):
  """`t6.py:tiny`'s initial variables (float32), as training makes them (jitted)."""
  model = sound2synth.create_model(tiny_config(), SPACE)
  return jax.jit(lambda f: model.init(jax.random.key(0), f, train=False))(features)


def test_grouped_dense_is_a_block_diagonal_dense_layer():
  x = jax.random.normal(jax.random.key(0), (3, 4, 5))  # [batch, groups, in]
  layer = GroupedDense(6)
  variables = layer.init(jax.random.key(1), x)
  kernel, bias = variables["params"]["kernel"], variables["params"]["bias"]
  assert kernel.shape == (4, 5, 6) and bias.shape == (4, 6)
  block_diagonal = jax.scipy.linalg.block_diag(*kernel)  # [4 * 5, 4 * 6], zero off the blocks
  dense = nn.Dense(24).apply({"params": {"kernel": block_diagonal, "bias": bias.reshape(-1)}},
                             x.reshape(3, 20))
  np.testing.assert_allclose(layer.apply(variables, x).reshape(3, 24), dense, atol=1e-5)


@pytest.mark.parametrize("size", [(2, 2), (3, 2), (1, 4)])
def test_adaptive_max_pool_matches_pytorch_bins(size):
  x = np.random.default_rng(0).normal(size=(2, 7, 9, 3)).astype(np.float32)
  expected = np.empty((2, *size, 3), np.float32)
  for i in range(size[0]):  # PyTorch: start floor(i n / o), end ceil((i + 1) n / o)
    for j in range(size[1]):
      rows = slice(i * 7 // size[0], -(-(i + 1) * 7 // size[0]))
      cols = slice(j * 9 // size[1], -(-(j + 1) * 9 // size[1]))
      expected[:, i, j] = x[:, rows, cols].max(axis=(1, 2))
  np.testing.assert_array_equal(adaptive_max_pool(jnp.asarray(x), size), expected)


@pytest.mark.parametrize("window", [(2, 2), (4, 4)])
def test_max_pool_has_flax_max_pool_value_and_gradient(window):
  x = jax.random.normal(jax.random.key(0), (2, 47, 130, 3))  # odd sizes: the edge is dropped
  expected = lambda x: nn.max_pool(x, window, strides=window)
  np.testing.assert_array_equal(max_pool(x, window), expected(x))
  loss = lambda pool: lambda x: jnp.sum(jnp.sin(pool(x)))
  np.testing.assert_allclose(jax.jit(jax.grad(loss(lambda x: max_pool(x, window))))(x),
                             jax.grad(loss(expected))(x), atol=1e-6)


def test_max_pool_gradient_goes_to_the_first_largest_of_each_window():
  # Ties: every window of ones sends its gradient to its top-left input, as an argmax would.
  x = np.ones((1, 4, 6, 2), np.float32)
  x[0, 3, 5, 1] = 2.0  # in the last window of channel 1, its bottom-right input is the max
  expected = np.zeros_like(x)
  expected[:, ::2, ::2] = 1.0
  expected[0, 2, 4, 1], expected[0, 3, 5, 1] = 0.0, 1.0
  gradient = jax.jit(jax.grad(lambda x: jnp.sum(max_pool(x, (2, 2)))))(jnp.asarray(x))
  np.testing.assert_array_equal(gradient, expected)
  # A NaN in a window makes its output NaN, as `nn.max_pool`'s does; the others are kept.
  x[0, 1, 0, 0] = np.nan
  pooled = np.asarray(max_pool(jnp.asarray(x), (2, 2)))
  assert np.isnan(pooled[0, 0, 0, 0]) and np.isnan(pooled).sum() == 1
  assert np.isnan(nn.max_pool(jnp.asarray(x), (2, 2), strides=(2, 2))[0, 0, 0, 0])


def test_region_max_has_jnp_max_value_and_gradient():
  x = jax.random.normal(jax.random.key(0), (3, 5, 4, 2))
  np.testing.assert_array_equal(region_max(x, (1, 2)), jnp.max(x, axis=(1, 2)))
  np.testing.assert_array_equal(jax.grad(lambda y: jnp.sum(region_max(y, (1,))))(x),
                                jax.grad(lambda y: jnp.sum(jnp.max(y, axis=1)))(x))


def single_branch_model(branch: str, features):
  """The tiny network with one branch, and its initial variables.

  `t6.py:tiny` has no STFT branch: here it keeps the VGG's stages and layers at 4 channels
  (the paper's 64 to 512 made its gradient check take minutes).
  """
  config = tiny_config()
  config.model.branches = (branch,)
  config.model.stft.stages = tuple((4,) * len(stage) for stage in config.model.stft.stages)
  config.model.stft.output_width = 16
  model = sound2synth.create_model(config, SPACE)
  return model, jax.jit(lambda f: model.init(jax.random.key(0), f, train=False))(features)


@pytest.fixture(scope="module")
def branch_models(features):
  """branch -> `single_branch_model(branch, features)`, made once per branch in this module."""
  made = {}

  def get(branch):
    if branch not in made:
      made[branch] = single_branch_model(branch, features)
    return made[branch]

  return get


@pytest.mark.parametrize("branch", sound2synth.BRANCHES)
def test_compiled_gradients_equal_unfused_gradients(branch, features, branch_models):
  """XLA's fusions once broke `jnp.max`'s gradient after batch norm (see `region_max`).

  The reference is the same gradient compiled with XLA's fusion pass off, so that every
  operation is its own kernel and nothing is recomputed inside another's: on 2026-11-26 it
  equalled the op-by-op gradients of every branch to 2.6e-7, in a third of their time, and
  with `jnp.max` pooling the fused gradients were 8 to 67 % away from it.
  """
  model, variables = branch_models(branch)
  weights = jax.random.normal(jax.random.key(1), (2, SPACE.total_classes))

  def loss(params):
    logits, _ = model.apply(variables | {"params": params}, features, train=True,
                            mutable=["batch_stats"])
    return jnp.sum(logits * weights)

  gradient = jax.jit(jax.grad(loss))
  params = variables["params"]
  compiled = gradient(params)
  unfused = gradient.lower(params).compile(
      compiler_options={"xla_disable_hlo_passes": "fusion"})(params)
  scale = float(optax.global_norm(unfused))
  for (path, got), want in zip(jax.tree_util.tree_leaves_with_path(compiled),
                               jax.tree.leaves(unfused)):
    norm = float(jnp.linalg.norm(want))
    if norm > 1e-6 * scale:  # biases before batch norm have a zero gradient, up to rounding
      relative = float(jnp.linalg.norm(got - want)) / norm
      assert relative < 1e-2, f"{jax.tree_util.keystr(path)}: {relative:.2g}"


def test_logit_order_lays_chunks_out_by_parameter():
  num_classes = (3, 2, 3, 1, 2)
  # Chunks in ascending class count: n=1 [param 3], n=2 [params 1, 4], n=3 [params 0, 2].
  chunks = ["3.0", "1.0", "1.1", "4.0", "4.1", "0.0", "0.1", "0.2", "2.0", "2.1", "2.2"]
  flat = [chunks[i] for i in H._logit_order(num_classes)]
  assert flat == [f"{k}.{c}" for k, n in enumerate(num_classes) for c in range(n)]


def _head_and_variables():
  head = H.ParameterHead(tuple(int(n) for n in SPACE.num_classes), H.parameter_groups(SPACE),
                         group_width=16, parameter_width=8)
  x = jax.random.normal(jax.random.key(0), (2, 32))
  return head, head.init(jax.random.key(1), x), x


def _changed_parameters(head, variables, x, path, index):
  """Which parameters' logits move when one slice of one kernel is perturbed."""
  params = jax.tree.map(lambda a: a, variables["params"])
  layer, name = path
  params[layer][name] = params[layer][name].at[index].add(1.0)
  delta = np.abs(head.apply({"params": params}, x) - head.apply(variables, x)) > 0
  blocks = np.split(delta, SPACE.class_offsets[1:-1], axis=-1)
  return {k for k, block in enumerate(blocks) if block.any()}


def test_head_groups_and_parameters_are_independent():
  head, variables, x = _head_and_variables()
  groups = np.array(H.parameter_groups(SPACE))
  assert sorted(set(groups)) == list(range(7))
  assert np.sum(groups == 6) == SPACE.num_params - 6 * np.sum(groups == 0)
  for group in (0, 3, 6):  # a group's private layer drives only that group's parameters
    changed = _changed_parameters(head, variables, x, ("GroupedDense_0", "kernel"), group)
    assert changed == set(np.flatnonzero(groups == group))
  sixty_four = np.flatnonzero(SPACE.num_classes == 64)
  for j in (0, 17, len(sixty_four) - 1):  # one parameter's output layer drives only its logits
    changed = _changed_parameters(head, variables, x, ("logits_64", "kernel"), j)
    assert changed == {sixty_four[j]}


def test_head_is_a_small_fraction_of_the_reference():
  config = config_file.load("configs/t6.py")
  model = sound2synth.create_model(config, SPACE)
  shapes = jax.eval_shape(lambda f: model.init(jax.random.key(0), f, train=False),
                          synthetic.random_features(1))
  head_params = sound2synth.count_parameters(shapes["params"]["head"])
  assert head_params < 0.05 * H.REFERENCE_HEAD_PARAMS


def test_reference_head_size_is_that_of_its_three_dense_layers():
  """The reference's head as it runs (its GroupFC layers are dense): 20.1 M + 95.9 M + 65.1 M."""

  class ReferenceHead(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.leaky_relu(nn.Dense(153 * 64, name="lin1")(x))
      x = nn.leaky_relu(nn.Dense(153 * 64, name="lin2")(x))
      return nn.Dense(6645, name="lin3")(x)

  shapes = jax.eval_shape(ReferenceHead().init, jax.random.key(0), jnp.zeros((1, 2048)))
  per_layer = [sound2synth.count_parameters(shapes["params"][f"lin{i}"]) for i in (1, 2, 3)]
  np.testing.assert_allclose(per_layer, [20.1e6, 95.9e6, 65.1e6], rtol=0.005)
  assert H.REFERENCE_HEAD_PARAMS == sum(per_layer)


def test_full_model_has_the_papers_branch_widths():
  config = config_file.load("configs/t6.py")
  model = sound2synth.create_model(config, SPACE)
  features = synthetic.random_features(1)
  _, state = jax.eval_shape(lambda f: model.init_with_output(
      jax.random.key(0), f, train=False, capture_intermediates=True), features)
  outputs = state["intermediates"]
  widths = {b: outputs[f"backbones_{b}"]["__call__"][0].shape[-1] for b in config.model.branches}
  assert widths == {"stft": 512, "mel": 512, "cqt": 512, "mfcc": 128, "statistics": 8 * 128}
  assert outputs["fusion"]["__call__"][0].shape == (1, 2048)


@pytest.mark.parametrize("branch", sound2synth.BRANCHES)
def test_each_branch_alone_is_a_model(branch, features, branch_models):
  model, variables = branch_models(branch)
  assert set(variables["params"]) == {f"backbones_{branch}", "fusion", "head"}
  logits = model.apply(variables, features, train=False)
  assert logits.shape == (2, SPACE.total_classes) and np.all(np.isfinite(logits))


def test_unknown_branch_and_bad_pooling_are_clear_errors(features):
  config = tiny_config()
  config.model.branches = ("mel", "chroma")
  with pytest.raises(ValueError, match="chroma"):
    sound2synth.create_model(config, SPACE)
  network = backbones.PdcNetwork(bins_per_octave=48, stages=(4, 4, 4), pool=8)
  with pytest.raises(ValueError, match="not divisible"):
    network.init(jax.random.key(0), features["cqt"], train=False)


def test_bfloat16_computes_in_bfloat16_and_keeps_float32_parameters(features, tiny_variables):
  """Both dtypes applied to the same initial variables; the bfloat16 model's own initial
  variables are checked by shape evaluation (their dtypes, not their values)."""
  config = tiny_config()
  outputs = {}
  for dtype in ("float32", "bfloat16"):
    config.model.dtype = dtype
    model = sound2synth.create_model(config, SPACE)
    shapes = jax.eval_shape(lambda f, m=model: m.init(jax.random.key(0), f, train=False),
                            features)
    assert {x.dtype for x in jax.tree.leaves(shapes)} == {jnp.dtype("float32")}
    assert jax.tree.map(lambda s: s.shape, shapes) == jax.tree.map(jnp.shape, tiny_variables)
    logits, state = jax.jit(lambda v, f, m=model: m.apply(
        v, f, train=False, capture_intermediates=True))(tiny_variables, features)
    assert logits.dtype == jnp.float32
    assert state["intermediates"]["fusion"]["__call__"][0].dtype == jnp.dtype(dtype)
    outputs[dtype] = logits
  assert {x.dtype for x in jax.tree.leaves(tiny_variables)} == {jnp.dtype("float32")}
  np.testing.assert_allclose(outputs["bfloat16"], outputs["float32"], atol=0.1)


def test_jitted_forward_on_a_batch_of_the_tiny_dataset(tiny_dataset, tiny_variables):
  """Featurising and the training-mode forward in one program, on the variables `init` makes
  from the `tiny` clip's shapes (`tiny_variables`)."""
  batch = next(iter(reader.loader(reader.data_source(tiny_dataset, "train"), batch_size=4,
                                  shuffle=False)))
  audio = storage.decode_audio(batch["audio_pcm"], batch["audio_scales"])
  banks = FeatureBanks.create(TINY_SPEC)
  model = sound2synth.create_model(tiny_config(), SPACE)

  @jax.jit
  def forward(variables, audio):
    return model.apply(variables, featurise(banks, audio) | {"audio": audio}, train=True,
                       mutable=["batch_stats"])

  variables = tiny_variables
  logits, state = forward(variables, audio)
  assert logits.shape == (4, SPACE.total_classes) and np.all(np.isfinite(logits))
  moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                       state["batch_stats"], variables["batch_stats"])
  assert all(change > 0 for change in jax.tree.leaves(moved))  # batch statistics were updated


class _FlaxBidirectionalLstm(nn.Module):
  """The library's way: `OptimizedLSTMCell` under `nn.RNN`, each direction and layer its own
  scan, as `MfccLstm` was written before its one-scan version."""
  hidden: int
  num_layers: int
  output_width: int
  dtype: object = None

  @nn.compact
  def __call__(self, mfcc, train):
    x, finals = mfcc, []
    for _ in range(self.num_layers):
      outputs = []
      for reverse in (False, True):
        cell = nn.OptimizedLSTMCell(self.hidden, dtype=self.dtype)
        (_, h), y = nn.RNN(cell, return_carry=True, reverse=reverse, keep_order=True)(x)
        finals.append(h)
        outputs.append(y)
      x = jnp.concatenate(outputs, axis=-1)
    return leaky_relu(nn.Dense(self.output_width, dtype=self.dtype)(
        jnp.concatenate(finals, axis=-1)))


@pytest.mark.parametrize("dtype", [None, jnp.bfloat16])
def test_the_one_scan_lstm_is_flax_lstm_cells_under_nn_rnn(dtype):
  """Same parameter names (trained weights load), same initial values, same outputs and
  gradients as flax's cells, each direction scanned on its own."""
  mfcc = jax.random.normal(jax.random.key(0), (3, 20, 13))
  ours = backbones.MfccLstm(hidden=8, num_layers=2, output_width=4, dtype=dtype)
  flax_way = _FlaxBidirectionalLstm(hidden=8, num_layers=2, output_width=4, dtype=dtype)
  init, apply = (lambda m: jax.jit(m.init, static_argnums=2),
                 lambda m: jax.jit(m.apply, static_argnums=2))  # op by op took 10 s
  variables = init(flax_way)(jax.random.key(1), mfcc, False)
  mine = init(ours)(jax.random.key(1), mfcc, False)
  assert jax.tree.structure(mine) == jax.tree.structure(variables)
  for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(variables)):
    np.testing.assert_array_equal(a, b)
  got, want = apply(ours)(variables, mfcc, False), apply(flax_way)(variables, mfcc, False)
  assert got.dtype == want.dtype == (dtype or jnp.float32)
  np.testing.assert_allclose(np.float32(got), np.float32(want), rtol=1e-6, atol=1e-6)
  grads = [jax.jit(jax.grad(lambda v, m=m: jnp.sum(m.apply(v, mfcc, False).astype(
      jnp.float32))))(variables) for m in (ours, flax_way)]
  tolerance = 1e-5 if dtype is None else 2e-2  # bfloat16 keeps 8 bits
  for a, b in zip(*map(jax.tree.leaves, grads)):
    np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)
