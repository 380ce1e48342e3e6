"""`ClipSpec`: the one description of a clip, from the note played to the samples recorded.

Rendering plays a voice by it, features are computed on clips of its rate and length, the
silent-operator mask reads its note, and a dataset (its metadata) and a model (its workdir's
`config.json`) record it, so a model is only applied to clips like those it was trained on.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ClipSpec:
  """How a voice is played and recorded: the paper's C4, 4 beats of 8 at 120 bpm, 48 kHz.

  Attributes:
    sample_rate: samples per second.
    note: MIDI note played.
    velocity: MIDI velocity of the note.
    note_seconds: how long the key is held.
    render_seconds: the clip's whole length (the release rings on after the key).
  """

  sample_rate: int = 48_000
  note: int = 60
  velocity: int = 127
  note_seconds: float = 2.0
  render_seconds: float = 4.0

  def __post_init__(self):
    if not 0 <= self.note <= 127 or not 1 <= self.velocity <= 127:
      raise ValueError(f"note must be 0..127 and velocity 1..127, got {self.note}, "
                       f"{self.velocity}")
    if not 0 < self.note_seconds <= self.render_seconds:
      raise ValueError(f"need 0 < note_seconds <= render_seconds, got {self.note_seconds}, "
                       f"{self.render_seconds}")

  @property
  def num_samples(self) -> int:
    return round(self.sample_rate * self.render_seconds)

  def to_dict(self) -> dict[str, float]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, fields: dict | None) -> ClipSpec:
    """The clip `to_dict` wrote; the paper's clip for None (what was stored before clips were)."""
    return cls(**fields) if fields else cls()


# What a model's network reads from a clip: a clip of another rate or length does not fit its
# input, and one at another note has other labels for the same sound.
MODEL_FIELDS = ("sample_rate", "note", "render_seconds")


def check_same_clip(model: ClipSpec, model_source: str, clip: ClipSpec, clip_source: str
                    ) -> None:
  """ValueError naming both values if `clip` differs from a model's clip where the model cares
  (`MODEL_FIELDS`); velocity and the key's length may differ. The sources name the model and
  whose clips `clip` describes ("the renderer's")."""
  different = [f"{name} {getattr(model, name)} vs {getattr(clip, name)}"
               for name in MODEL_FIELDS if getattr(model, name) != getattr(clip, name)]
  if different:
    raise ValueError(f"{model_source} was trained on other clips than {clip_source}: "
                     f"{', '.join(different)}")
