"""What a preset folder holds: the counts `s2s-presets` and the main job report."""

from __future__ import annotations

import numpy as np

from s2s_jax.synth import params
from s2s_jax.synth import splits
from s2s_jax.synth.corpus import Corpus


def summarize(corpus: Corpus, max_differences: int = 3, seed: int = 20001101,
              fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict[str, object]:
  """Counts of files, voices, near-duplicate groups, algorithms and splits (JSON-ready)."""
  groups = splits.near_duplicate_groups(corpus.voices, max_differences)
  split = splits.assign_splits(corpus.voices, groups, seed, fractions)
  group_sizes = np.bincount(groups) if len(groups) else np.zeros(0, int)
  per_algorithm = np.bincount(corpus.algorithms, minlength=params.NUM_ALGORITHMS + 1)
  return {
      "root": str(corpus.root),
      "files_read": len(corpus.files),
      "files_rejected": corpus.rejected_by_reason,
      "voice_slots": len(corpus.slots),
      "distinct_voices": len(corpus.voices),
      "near_duplicate_groups": int(len(group_sizes)),
      "max_differences": max_differences,
      "largest_group": int(group_sizes.max(initial=0)),
      "voices_per_algorithm": {str(a): int(n) for a, n in enumerate(per_algorithm) if a},
      "seed": seed,
      "splits": {
          name: {"voices": int(np.sum(split == i)), "groups": len(np.unique(groups[split == i]))}
          for i, name in enumerate(splits.SPLITS)
      },
      "rejected": [{"path": r.path, "reason": r.reason, "message": r.message}
                   for r in corpus.rejected],
  }


def format_summary(summary: dict[str, object]) -> str:
  """The summary as text for people."""
  rejected = summary["files_rejected"]
  lines = [
      f"preset folder        {summary['root']}",
      f"files read           {summary['files_read']}",
      f"files rejected       {sum(rejected.values())}"
      + "".join(f"\n  {reason:<19}{n}" for reason, n in rejected.items()),
      f"voice slots          {summary['voice_slots']}",
      f"distinct voices      {summary['distinct_voices']}",
      f"near-duplicate groups {summary['near_duplicate_groups']} "
      f"(within {summary['max_differences']} parameters; largest {summary['largest_group']})",
      "distinct voices per algorithm",
  ]
  per_algorithm = list(summary["voices_per_algorithm"].items())
  for row in range(0, len(per_algorithm), 8):
    lines.append("  " + "  ".join(f"{a:>2}:{n:>5}" for a, n in per_algorithm[row:row + 8]))
  lines.append(f"splits (seed {summary['seed']})")
  for name, split in summary["splits"].items():
    lines.append(f"  {name:<11}{split['voices']:>7} voices in {split['groups']} groups")
  for r in summary["rejected"]:
    lines.append(f"rejected: {r['message']}")
  return "\n".join(lines)
