"""The `dexed_presets` builder on dummy data, with TFDS's own builder test case.

TFDS's test case reads back through `as_dataset` (TensorFlow), so these builds are written as
TFRecords; the TF-free array_record path is tested in tests/test_data.py.
"""

import tensorflow_datasets as tfds

from dexed_presets import dexed_presets_dataset_builder


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
  """`all_light` on the dummy folder: every real voice, plus one variant outside test.

  The folder holds 40 distinct voices (a bank of 32 and 8 single voices; broken.syx is
  rejected) in 20 near-duplicate groups, which the seeded split sends 32 voices to train, 2 to
  validation and 6 to test (recorded when the dummy data was written).
  """

  BUILDER_CONFIG_NAMES_TO_TEST = ["all_light"]
  SPLITS = {"train": 2 * 32, "validation": 2 * 2, "test": 6}


if __name__ == "__main__":
  tfds.testing.test_main()
