"""The seed's five named training configurations (SPEC.md), so its results can be rerun by name.

Every preset is Adam with MSE on the normalised ab at batch 32; they differ in learning rate and
epochs. The seed's own figures are kept next to each, for comparison with our runs. Command-line
flags override a preset's values (`Preset.override`).
"""
from __future__ import annotations

import dataclasses

DEFAULT = "Koala_00001_20"


@dataclasses.dataclass(frozen=True)
class Preset:
  name: str
  learning_rate: float
  epochs: int
  batch_size: int = 32
  seed_note: str = ""

  def override(self, **values) -> "Preset":
    """A copy with every value that is not None replaced."""
    return dataclasses.replace(self, **{k: v for k, v in values.items() if v is not None})


PRESETS = {p.name: p for p in (
    Preset("Koala_01_20", 0.01, 20,
           seed_note="seed: test loss 0.965 (diverged), 'acc' 0.633, 3.5 h"),
    Preset("Koala_0005_40", 0.0005, 40, seed_note="seed: no result recorded"),
    Preset("Koala_0005_100", 0.0005, 100, seed_note="seed: test loss 0.0138, 'acc' 0.649, 17 h"),
    Preset("Koala_0001_50", 0.0001, 50, seed_note="seed: test loss 0.0128, 'acc' 0.649, 8.5 h"),
    Preset("Koala_00001_20", 0.00001, 20,
           seed_note="seed: test loss 0.0116, 'acc' 0.659, 3.5 h (its best)"),
)}


def get(name: str = DEFAULT) -> Preset:
  try:
    return PRESETS[name]
  except KeyError:
    raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
