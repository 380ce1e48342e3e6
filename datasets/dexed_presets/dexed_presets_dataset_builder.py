"""`tfds build` entry for the `dexed_presets` dataset (run it in this folder).

The builder lives in `s2s_jax.data.builder`, so that `python -m s2s_jax.data.build` builds
the same dataset without TensorFlow; this class only registers it where TFDS looks.
"""

from s2s_jax.data import builder


class Builder(builder.DexedPresetsBuilder):
  """DX7 voices rendered by Dexed, with their class labels and gradient-inspired weights."""
