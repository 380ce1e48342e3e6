"""The SOUND2SYNTH network in PyTorch, for `s2s-bench train`'s side-by-side timing.

The authors' architecture as their released code writes it (NCHW `Conv2d` + `BatchNorm2d`, the
PDC as a sum of shifted copies, `nn.LSTM`, per-statistic MLPs), built from the Flax model
`models.sound2synth.create_model` makes of a config, so both frameworks train the same shapes
with the same parameters per branch. Two departures from the released code, both the Flax
model's: the PDC runs along frequency, and the head is this project's grouped head (its 181 M
dense weights would dwarf the backbones). `nn.LSTM`'s input bias is frozen at zero: PyTorch
keeps two redundant biases where Flax's LSTM cell has one.

The step is forward, the loss, backward, gradient-norm clipping and AdamW on features `[batch,
time, ...]` (the featuriser is left out, as on the JAX side of the comparison). Needs the
`bench` extra (`pip install -e ".[bench]"`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from s2s_jax.audio.features import STATISTICS
from s2s_jax.models import backbones as flax_backbones
from s2s_jax.models import head as flax_head
from s2s_jax.models import pdc
from s2s_jax.models.layers import LEAKY_SLOPE
from s2s_jax.models.sound2synth import BRANCHES, Sound2Synth

_BN_MOMENTUM = 0.1  # PyTorch's convention of layers.BN_MOMENTUM


def leaky_relu(x: torch.Tensor) -> torch.Tensor:
  return F.leaky_relu(x, LEAKY_SLOPE)


class GroupedLinear(nn.Module):
  """One private `[in, out]` matrix per group: `[batch, groups, in]` -> `[batch, groups, out]`."""

  def __init__(self, groups: int, fan_in: int, features: int):
    super().__init__()
    self.weight = nn.Parameter(torch.randn(groups, fan_in, features) / math.sqrt(fan_in))
    self.bias = nn.Parameter(torch.zeros(groups, features))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bgi,gio->bgo", x, self.weight) + self.bias


class SpectrogramCnn(nn.Module):
  """The VGG-11-BN-like CNN on a spectrogram `[batch, time, freq]` -> `[batch, width]`."""

  def __init__(self, spec: flax_backbones.SpectrogramCnn):
    super().__init__()
    self.input_pool = tuple(spec.input_pool)
    layers, channels = [], 1
    for i, stage in enumerate(spec.stages):
      if i:
        layers.append(nn.MaxPool2d(2))
      for width in stage:
        layers += [nn.Conv2d(channels, width, 3, padding=1),
                   nn.BatchNorm2d(width, eps=1e-5, momentum=_BN_MOMENTUM),
                   nn.LeakyReLU(LEAKY_SLOPE)]
        channels = width
    self.features = nn.Sequential(*layers)
    self.fc = nn.Linear(4 * channels, spec.output_width)

  def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
    x = spectrogram[:, None]
    if self.input_pool != (1, 1):
      x = F.avg_pool2d(x, self.input_pool)
    x = F.adaptive_max_pool2d(self.features(x), 2).flatten(1)
    return leaky_relu(self.fc(x))


class PrimeDilatedConv(nn.Module):
  """The depthwise PDC along the last (frequency) axis of `[batch, channels, time, freq]`."""

  def __init__(self, offsets: tuple[int, ...], channels: int):
    super().__init__()
    self.offsets = offsets
    bound = 1 / math.sqrt(len(offsets))
    self.taps = nn.Parameter(torch.empty(len(offsets), channels).uniform_(-bound, bound))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    left, right = max(0, -min(self.offsets)), max(0, max(self.offsets))
    padded = F.pad(x, (left, right))
    n = x.shape[-1]
    return sum(padded[..., left + k:left + k + n] * w[:, None, None]
               for k, w in zip(self.offsets, self.taps))


class PdcNetwork(nn.Module):
  """The PDC network on the CQT `[batch, time, freq]` -> `[batch, width]`."""

  def __init__(self, spec: flax_backbones.PdcNetwork):
    super().__init__()
    if spec.channel_mixing:
      raise ValueError("the PyTorch PDC network has the depthwise filter only "
                       "(model.cqt.channel_mixing=False)")
    layers, channels = [], 1
    for i, (width, bins) in enumerate(zip(spec.stages, spec.stage_bins_per_octave())):
      if i:
        layers.append(nn.MaxPool2d(spec.pool))
      layers.append(nn.Conv2d(channels, width, spec.kernel_size, padding=spec.kernel_size // 2,
                              bias=False))
      offsets = pdc.prime_ratio_offsets(bins, spec.num_primes, spec.symmetric)
      layers += [PrimeDilatedConv(offsets, width) for _ in range(spec.pdc_layers)]
      layers += [nn.BatchNorm2d(width, eps=1e-5, momentum=_BN_MOMENTUM), nn.ReLU()]
      channels = width
    self.features = nn.Sequential(*layers)
    self.fc = nn.Linear(4 * channels, spec.output_width)

  def forward(self, cqt: torch.Tensor) -> torch.Tensor:
    x = F.adaptive_max_pool2d(self.features(cqt[:, None]), 2).flatten(1)
    return leaky_relu(self.fc(x))


class MfccLstm(nn.Module):
  """Bidirectional LSTM on the MFCCs `[batch, time, n_mfcc]`: final states -> `[batch, width]`."""

  def __init__(self, spec: flax_backbones.MfccLstm, n_mfcc: int):
    super().__init__()
    self.lstm = nn.LSTM(n_mfcc, spec.hidden, spec.num_layers, batch_first=True,
                        bidirectional=True)
    for name, value in self.lstm.named_parameters():
      if name.startswith("bias_ih"):
        value.data.zero_()
        value.requires_grad_(False)
    self.fc = nn.Linear(2 * spec.num_layers * spec.hidden, spec.output_width)

  def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
    _, (h, _) = self.lstm(mfcc)
    return leaky_relu(self.fc(h.transpose(0, 1).flatten(1)))


class StatisticsMlp(nn.Module):
  """One private two-layer MLP per statistic: `[batch, statistics, time]` -> `[batch, s * w]`."""

  def __init__(self, spec: flax_backbones.StatisticsMlp, frames: int):
    super().__init__()
    self.hidden = GroupedLinear(len(STATISTICS), frames, spec.hidden)
    self.out = GroupedLinear(len(STATISTICS), spec.hidden, spec.output_width)

  def forward(self, statistics: torch.Tensor) -> torch.Tensor:
    return leaky_relu(self.out(leaky_relu(self.hidden(statistics)))).flatten(1)


class ParameterHead(nn.Module):
  """`models.head.ParameterHead`: global feature `[batch, d]` -> logits `[batch, classes]`."""

  def __init__(self, spec: flax_head.ParameterHead, fan_in: int):
    super().__init__()
    groups = max(spec.groups) + 1
    self.group_width = spec.group_width
    self.first = nn.Linear(fan_in, groups * spec.group_width)
    self.group_layers = nn.ModuleList(GroupedLinear(groups, spec.group_width, spec.group_width)
                                      for _ in range(spec.group_layers))
    self.register_buffer("groups", torch.as_tensor(spec.groups), persistent=False)
    self.parameter_hidden = GroupedLinear(len(spec.groups), spec.group_width,
                                          spec.parameter_width)
    num_classes = np.asarray(spec.num_classes)
    self.chunks = [torch.as_tensor(np.flatnonzero(num_classes == n))
                   for n in np.unique(num_classes)]
    self.logits = nn.ModuleList(GroupedLinear(len(members), spec.parameter_width, int(n))
                                for members, n in zip(self.chunks, np.unique(num_classes)))
    self.register_buffer("order", torch.as_tensor(flax_head._logit_order(spec.num_classes)),
                         persistent=False)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h = leaky_relu(self.first(x)).view(x.shape[0], -1, self.group_width)
    for layer in self.group_layers:
      h = leaky_relu(layer(h))
    h = leaky_relu(self.parameter_hidden(h[:, self.groups]))
    chunks = [layer(h[:, members]).flatten(1) for layer, members in zip(self.logits, self.chunks)]
    return torch.cat(chunks, dim=1)[:, self.order]


class TorchSound2Synth(nn.Module):
  """Features (name -> `[batch, time, ...]`) -> logits `[batch, total_classes]`, float32."""

  def __init__(self, model: Sound2Synth, frames: int, n_mfcc: int):
    super().__init__()
    branches = {
        "stft": lambda spec: SpectrogramCnn(spec),
        "mel": lambda spec: SpectrogramCnn(spec),
        "cqt": lambda spec: PdcNetwork(spec),
        "mfcc": lambda spec: MfccLstm(spec, n_mfcc),
        "statistics": lambda spec: StatisticsMlp(spec, frames),
    }
    unsupported = set(model.backbones) - set(branches)
    if unsupported:
      raise ValueError(f"no PyTorch backbone for branches {sorted(unsupported)}")
    self.order = [b for b in BRANCHES if b in model.backbones]
    self.backbones = nn.ModuleDict({b: branches[b](model.backbones[b]) for b in self.order})
    widths = sum(_output_width(b, model.backbones[b]) for b in self.order)
    self.fusion = nn.Linear(widths, model.global_width)
    head = flax_head.ParameterHead(model.num_classes, model.groups, **(model.head or {}))
    self.head = ParameterHead(head, model.global_width)

  def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
    x = torch.cat([self.backbones[b](branch_input(features, b)) for b in self.order], dim=1)
    return self.head(leaky_relu(self.fusion(x)))


def branch_input(features: dict[str, torch.Tensor], branch: str) -> torch.Tensor:
  """`models.sound2synth.branch_input` for PyTorch tensors."""
  if branch == "statistics":
    return torch.stack([features[name] for name in STATISTICS], dim=1)
  return features[branch]


def _output_width(branch: str, spec) -> int:
  return spec.output_width * (len(STATISTICS) if branch == "statistics" else 1)


def count_parameters(module: nn.Module) -> int:
  """Trained numbers (frozen ones left out)."""
  return sum(p.numel() for p in module.parameters() if p.requires_grad)


def parameter_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
                   index: torch.Tensor, valid: torch.Tensor, num_classes: torch.Tensor
                   ) -> torch.Tensor:
  """`train.losses`' loss from precomputed targets: the batch mean of sum_k w_k L_k / sum_k w_k.

  logits `[batch, total]`; targets `[batch, P, max_classes]` (`losses.smoothed_targets`);
  weights `[batch, P]` (gradient weights times the active mask); index, valid
  `[P, max_classes]` and num_classes `[P]` from `infer.logits.ClassLayout`.
  """
  padded = logits[:, index].masked_fill(~valid, -math.inf)
  log_probs = torch.log_softmax(padded, dim=-1).masked_fill(~valid, 0.0)
  losses = -(targets * log_probs).sum(-1) / torch.log(num_classes.float())
  return ((weights * losses).sum(-1) / (weights.sum(-1) + 1e-9)).mean()


class TrainStep:
  """The training step of `TorchSound2Synth` on one fixed batch, as `bench.train` times it.

  Forward in training mode, `parameter_loss`, backward, clipping to `config.grad_clip_norm`,
  AdamW at the config's learning rate and weight decay (the schedule, a scalar, left out).

  Args:
    model: the Flax model whose architecture is rebuilt.
    features: name -> `[batch, time, ...]` float32 arrays.
    targets, weights, layout: see `parameter_loss` (numpy arrays).
  """

  def __init__(self, model: Sound2Synth, config, features: dict[str, np.ndarray],
               targets: np.ndarray, weights: np.ndarray, layout: dict[str, np.ndarray],
               fused: bool):
    frames, n_mfcc = features["mfcc"].shape[1:]
    self.model = TorchSound2Synth(model, frames, n_mfcc).train()
    self.features = {name: torch.from_numpy(np.array(x)) for name, x in features.items()}
    self.targets, self.weights = torch.from_numpy(np.array(targets)), torch.from_numpy(weights)
    self.layout = {name: torch.from_numpy(np.array(x)) for name, x in layout.items()}
    self.parameters = [p for p in self.model.parameters() if p.requires_grad]
    self.clip = config.grad_clip_norm
    self.optimizer = torch.optim.AdamW(self.parameters, lr=config.learning_rate,
                                       weight_decay=config.weight_decay, fused=fused)

  def run(self) -> None:
    self.optimizer.zero_grad(set_to_none=True)
    logits = self.model(self.features)
    loss = parameter_loss(logits, self.targets, self.weights, **self.layout)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(self.parameters, self.clip)
    self.optimizer.step()
