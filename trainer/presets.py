"""The original project's five named training configurations (docs/SPEC.md), so its results can be
rerun by name.

Every seed preset is Adam with MSE on the normalised ab at batch 32; they differ in learning rate
and epochs. The original project's own figures are kept next to each, for comparison with our runs.
Command-line flags override a preset's values (`Preset.override`).

Koala_cpu is ours: the best model that a 2-core CPU trains in a time budget (trainer.task
--max_minutes), a narrow copy of the network at half the image size, at a rate and batch that
make many updates in few minutes (docs/trainer.md, "A CPU recipe", has the measurements).
"""
from __future__ import annotations

import dataclasses

DEFAULT = "Koala_00001_20"
CPU = "Koala_cpu"


@dataclasses.dataclass(frozen=True)
class Preset:
  name: str
  learning_rate: float
  epochs: int
  batch_size: int = 32
  seed_note: str = ""
  width: float = 1.0          # channel multiplier of every layer (< 1: a narrow copy)
  image_size: int = 224       # records are area-averaged down to it (a multiple of 8)

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
    Preset(CPU, 0.001, 10_000, batch_size=8, width=0.25, image_size=112,
           seed_note="ours: for --max_minutes on a 2-core CPU; epochs is a cap, the budget ends it"),
)}


def get(name: str = DEFAULT) -> Preset:
  try:
    return PRESETS[name]
  except KeyError:
    raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
