"""The paper's T6 setting: all six operators learnt, one DX7 algorithm per model.

  python -m s2s_jax.main --config=configs/t6.py[:VARIANT] --workdir=DIR [--config.x=y ...]

Variants:
  full  (default) the paper's network and recipe (Section 3 and the appendix) on `alg01`.
  reference  the full network with the branches of the authors' released multimodal model
        (STFT VGG, PDC on the CQT, LSTM, statistics; no mel CNN), 2 clips per step as it
        trained them: `s2s-bench train` times it against the same network in PyTorch.
  cpu   a narrow network on the mel, CQT, MFCC and statistics branches that learns something
        in 20 minutes on two CPU cores.
  tiny  a toy network on the built-in `tiny` dataset (random presets): tests and the README.
  bundled  the model shipped in `s2s_jax/bundled/`: one small network for all 32 algorithms
        that also predicts the algorithm, trained on online renders of mutated voices of a
        preset folder's training split (no dataset build) within `max_train_seconds`:
          python -m s2s_jax.main --config=configs/t6.py:bundled --workdir=runs/bundled \
              --config.manual_dir=PRESETS
"""

import ml_collections

# The reference's VGG-11-BN-like stages on the STFT (and here, as the paper says, on the mel).
VGG_STAGES = ((64,), (128,), (256, 256), (512, 512), (512, 512))


def full_model() -> ml_collections.ConfigDict:
  """The paper's widths: 512 for convolutional branches, 128 for the others, 2048 fused."""
  return ml_collections.ConfigDict(dict(
      branches=("stft", "mel", "cqt", "mfcc", "statistics"),
      stft=dict(stages=VGG_STAGES, output_width=512),
      mel=dict(stages=VGG_STAGES, output_width=512, input_pool=(1, 1)),
      cqt=dict(bins_per_octave=48, stages=(64, 128), kernel_size=7, pool=4, pdc_layers=3,
               num_primes=3, symmetric=True, channel_mixing=False, output_width=512),
      mfcc=dict(hidden=256, num_layers=2, output_width=128),
      statistics=dict(hidden=256, output_width=128),
      waveform=dict(output_width=128),
      global_width=2048,
      head=dict(group_width=256, group_layers=1, parameter_width=64),
      dtype="float32",
  ))


def get_config(variant: str = "full") -> ml_collections.ConfigDict:
  if variant not in VARIANTS:
    raise ValueError(f"unknown t6.py variant {variant!r}: use one of {sorted(VARIANTS)}")
  config = ml_collections.ConfigDict()
  config.seed = 20001101
  config.num_bins = 64  # classes of each continuous (0..99) parameter; must match the dataset
  config.predict_algorithm = False  # learn ALGORITHM as one more class (one model for all)

  # Data: a built `dexed_presets` config (built first if missing), or online rendering.
  config.input = "dataset"  # "dataset" or "online"
  config.dataset_config = "alg01"
  config.data_dir = "~/tensorflow_datasets"  # "" = `workdir/tensorflow_datasets`
  config.manual_dir = ""  # folder of .syx presets, for configs with real presets
  # build_dataset=False: no build; splits of config.manual_dir in memory, `eval_examples`
  # voices of validation and test rendered for evaluation (train.preset_splits).
  config.online = dict(mode="random", max_changes=3, workers=2, prefetch=4,
                       examples_per_epoch=4096, build_dataset=True, eval_examples=256)
  config.input_noise = 1e-4  # std of Gaussian noise added to training audio only

  config.model = full_model()

  # Loss.
  config.label_smoothing = 0.02  # Gaussian std as a fraction of the bins (1.28 bins at K=64)
  config.use_gradient_weights = True
  config.mask_inactive = True  # drop parameters of operators at output level 0

  # Optimisation: AdamW, linear warm-up then cosine, per step.
  config.batch_size = 64  # effective (global) batch
  config.per_step_batch_size = 64  # smaller: gradient accumulation up to batch_size
  config.learning_rate = 2e-4
  config.weight_decay = 1e-4
  config.warmup_epochs = 4
  config.num_epochs = 30
  config.grad_clip_norm = 1.0
  config.max_nonfinite_in_a_row = 5  # steps of non-finite loss or gradients before the run stops
  config.swa_start_epoch = 24  # average weights from here (batch norm statistics recomputed)
  config.early_stopping_patience = 8  # epochs without a better validation loss

  # Evaluation, logging, checkpoints.
  config.eval_every_epochs = 1
  config.eval_mfccd_examples = 64  # validation examples rendered for MFCCD per evaluation
  config.image_summaries = 4
  config.log_every_steps = 10
  config.checkpoint_every_steps = 500
  config.max_train_seconds = 0.0  # stop (and evaluate) after this long; 0 = no limit

  config.update_from_flattened_dict(VARIANTS[variant])
  return config


# The narrow MFCC, statistics, fusion and head of the CPU variants.
SMALL_FUSION_AND_HEAD = {
    "model.mfcc.num_layers": 1,
    "model.statistics.hidden": 64,
    "model.statistics.output_width": 32,
    "model.global_width": 512,
    "model.head.group_width": 128,
    "model.head.parameter_width": 32,
}

# Each variant's overrides of the full setting.
VARIANTS = {
    "full": {},
    # The released code's multimodal preset trained 1 or 2 clips per step, accumulated to 64.
    "reference": {"model.branches": ("stft", "cqt", "mfcc", "statistics"),
                  "per_step_batch_size": 2},
    "cpu": {
        "model.branches": ("mel", "cqt", "mfcc", "statistics"),
        "model.mel.stages": ((8,), (16,), (32,), (64,)),
        "model.mel.output_width": 128,
        "model.cqt.stages": (4, 8),
        "model.cqt.kernel_size": 5,
        "model.cqt.output_width": 128,
        "model.mfcc.hidden": 64,
        **SMALL_FUSION_AND_HEAD,
        "dataset_config": "alg13",
        "batch_size": 32,
        "per_step_batch_size": 32,
        "learning_rate": 1e-3,
        "warmup_epochs": 1,
        "num_epochs": 8,
        "swa_start_epoch": 6,
        "max_train_seconds": 1200.0,
        "checkpoint_every_steps": 200,
    },
    "bundled": {
        "model.branches": ("mel", "mfcc", "statistics"),
        "model.mel.stages": ((8,), (16,), (32,)),
        "model.mel.input_pool": (4, 2),
        "model.mel.output_width": 128,
        "model.mfcc.hidden": 32,
        **SMALL_FUSION_AND_HEAD,
        "num_bins": 100,
        "predict_algorithm": True,
        "input": "online",
        "dataset_config": "all",
        "online.mode": "augment",
        "online.build_dataset": False,
        "online.examples_per_epoch": 4096,
        "label_smoothing": 0.01,
        "use_gradient_weights": False,
        "batch_size": 32,
        "per_step_batch_size": 32,
        "learning_rate": 1e-3,
        "warmup_epochs": 1,
        "online.eval_examples": 128,
        "num_epochs": 16,
        "swa_start_epoch": 1000,
        "early_stopping_patience": 1000,
        "eval_mfccd_examples": 32,
        "max_train_seconds": 3300.0,
        "checkpoint_every_steps": 100,
    },
    "tiny": {
        "model.branches": ("mel", "cqt", "mfcc", "statistics"),
        "model.mel.stages": ((4,), (8,)),
        "model.mel.output_width": 16,
        "model.cqt.stages": (4, 4),
        "model.cqt.pdc_layers": 1,
        "model.cqt.output_width": 16,
        "model.mfcc.hidden": 8,
        "model.mfcc.num_layers": 1,
        "model.mfcc.output_width": 8,
        "model.statistics.hidden": 8,
        "model.statistics.output_width": 4,
        "model.global_width": 32,
        "model.head.group_width": 16,
        "model.head.parameter_width": 8,
        "dataset_config": "tiny",
        "data_dir": "",
        "batch_size": 8,
        "per_step_batch_size": 4,
        "learning_rate": 1e-3,
        "warmup_epochs": 1,
        "num_epochs": 3,
        "swa_start_epoch": 2,
        "early_stopping_patience": 2,
        "eval_mfccd_examples": 3,
        "image_summaries": 2,
        "log_every_steps": 2,
        "checkpoint_every_steps": 4,
    },
}
