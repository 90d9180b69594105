"""The demo's two sizes: FULL for `make demo`, SMALL for CI. Both run the same code path.

Why these numbers: the demo must finish within 10 minutes on 2 CPU cores. The fixed costs are
loading Inception-ResNet-v2 three times (pipeline, export, server; the export also saves it)
and the real embedder embeds only a few images a second on such a CPU, so FULL keeps the sample
set near a hundred images. Training uses a narrowed copy of the SPEC architecture (`width`) at a
reduced chroma resolution (`image_size`): the full-size model needs seconds per image per training
step on a CPU. The sample scenes follow simple rules (blue sky, green grass, red roofs), which such
a small model learns in a few hundred steps; that is all the demo claims. The model is the guided
one (`trainer.task --hints`): it colours automatically as well, and the report adds each page with
a few hint dots and with a reference palette. The pipeline trains it on manga renderings of the
scenes (`pipeline.run --render=manga`: paper, ink, screentone), `renderings_per_image` differently
styled pages per scene; SMALL keeps one, so that CI's pipeline stage costs what it did.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DemoConfig:
  name: str
  scenes: int                 # procedural colour scenes for the pipeline
  pages: int                  # gray pages to colorize (scenes the training set does not hold)
  photos: bool                # add scikit-image's bundled colour photos
  epochs: int
  steps_per_epoch: int
  batch_size: int
  learning_rate: float
  width: float                # < 1: a narrow copy of the SPEC model (not the SPEC model)
  image_size: int             # the colorizer's L / ab side; chroma is upsampled onto full-size L
  embedder_weights: str = "random"   # offline; "imagenet" or a weights file for real results
  evaluate: bool = True       # score the model on the test split next to the two baselines
  # The pipeline's --val_fraction and --test_fraction (each). The split is a hash draw per image:
  # on 16 images, 10 % leaves a split empty one time in five (0.9^16 = 0.19) and evaluation
  # needs test records; 20 % makes that 0.8^16 = 0.03 per split.
  held_out: float = 0.1
  hints: bool = True          # train the guided model; colour each page with hints and a reference
  hint_dots: int = 6          # dots per page for the "with a few hints" column
  # The evaluation's dot counts (a manga guided job's default is 0-100, eight counts, each with
  # Levin's flat fill beside it: minutes on a CPU); SMALL skips the flat fill.
  eval_hints: str = "0,10"
  eval_flat_fill: bool = True
  renderings_per_image: int = 2   # pipeline --render=manga: styled pages per colour image


FULL = DemoConfig(name="full", scenes=96, pages=6, photos=True, epochs=5, steps_per_epoch=24,
                  batch_size=16, learning_rate=3e-3, width=0.375, image_size=112)

# CI: the same stages on a handful of images; the result is coloured but not pretty.
SMALL = DemoConfig(name="small", scenes=16, pages=2, photos=False, epochs=2, steps_per_epoch=8,
                   batch_size=8, learning_rate=3e-3, width=0.25, image_size=56, held_out=0.2,
                   renderings_per_image=1, eval_flat_fill=False)

CONFIGS = {c.name: c for c in (FULL, SMALL)}
