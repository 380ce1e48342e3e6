"""The `dexed_presets` builder on dummy data, with TFDS's own builder test case.

TFDS's test case reads back through `as_dataset` (TensorFlow), so these builds are written as
TFRecords; the TF-free array_record path is tested in tests/test_data.py.
"""

import pathlib

import numpy as np
import tensorflow_datasets as tfds

from dexed_presets import dexed_presets_dataset_builder
from s2s_jax.synth import corpus
from s2s_jax.synth import splits

_DUMMY_DATA = pathlib.Path(__file__).parent / "dummy_data"


class _TFRecordBuilds:
  """Mixed into TFDS's test case (a base TestCase would be collected as a test itself)."""

  DATASET_CLASS = dexed_presets_dataset_builder.Builder
  SKIP_CHECKSUMS = True

  def _make_builder(self, config=None):
    return self.dataset_class(data_dir=self.tmp_dir, config=config, version=self.VERSION,
                              file_format="tfrecord")


class TinyTest(_TFRecordBuilds, tfds.testing.DatasetBuilderTestCase):
  """`tiny` needs no user data: 60 random-walk presets in walks of 3, split by walk."""

  BUILDER_CONFIG_NAMES_TO_TEST = ["tiny"]
  SPLITS = {"train": 51, "validation": 3, "test": 6}


class RealPresetsTest(_TFRecordBuilds, tfds.testing.DatasetBuilderTestCase):
  """`all_light` on the dummy folder: every real voice, plus one variant outside test."""

  BUILDER_CONFIG_NAMES_TO_TEST = ["all_light"]

  @classmethod
  def setUpClass(cls):
    presets = corpus.read_corpus(_DUMMY_DATA)
    groups = splits.near_duplicate_groups(presets.voices, 3)
    real = np.bincount(splits.assign_splits(presets.voices, groups), minlength=3)
    cls.SPLITS = {"train": 2 * real[0], "validation": 2 * real[1], "test": real[2]}
    super().setUpClass()


if __name__ == "__main__":
  tfds.testing.test_main()
