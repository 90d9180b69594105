"""Levin, Lischinski and Weiss, "Colorization using Optimization" (SIGGRAPH 2004): the
non-learned reference that spreads the same colour hints the guided model gets.

Each pixel's colour should be the weighted average of its 8 neighbours', with weights that are
large where the lightness is similar: w_rs ~ exp(-(Y_r - Y_s)^2 / c_r), as the authors' code
has it: c_r = 0.6 x the variance of Y over r's 3 x 3 window, raised where needed so that r's
closest neighbour gets a weight of at least 0.01, and at least 2e-6; each row normalised to 1. Hinted pixels are fixed to
their hint. That is one sparse linear system, A x = b with A = I - W on free pixels and the
identity on hinted ones, solved once (one LU factorisation) for a and again for b. With no hints
the answer is gray (ab = 0), as the paper's method has nothing to spread.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

MIN_VARIANCE = 2e-6    # floor of c_r (Y in 0..1), as in the authors' code
VARIANCE_SCALE = 0.6   # c_r = 0.6 x the window's variance (csig = c_var * 0.6)
PERMUTATION = "MMD_AT_PLUS_A"   # SuperLU's ordering: fastest of its four on these 8-neighbour grids
MIN_NEAREST_WEIGHT = 0.01   # c_r >= -min_s (Y_r - Y_s)^2 / log(0.01)


def propagate(l: np.ndarray, hint_ab: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """L (H, W[, 1]) in 0..100, hint ab (H, W, 2) in LAB units, mask (H, W) bool -> ab (H, W, 2).

  The hinted pixels keep their hint exactly; no hints at all gives zeros.
  """
  mask = np.asarray(mask, bool)
  h, w = mask.shape
  if not mask.any():
    return np.zeros((h, w, 2), np.float32)
  y = np.asarray(l, np.float64).reshape(h, w) / 100.0
  n = h * w
  index = np.arange(n).reshape(h, w)
  padded = np.pad(y, 1, mode="edge")
  windows = np.stack([padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)])
  neighbours = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
  # Squared differences to each neighbour (inf outside the image: no such neighbour).
  diff2 = np.full((8, h, w), np.inf)
  for k, (dy, dx) in enumerate(neighbours):
    ys, xs = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))
    ys_n, xs_n = slice(max(0, dy), h - max(0, -dy)), slice(max(0, dx), w - max(0, -dx))
    diff2[k, ys, xs] = (y[ys, xs] - y[ys_n, xs_n]) ** 2
  c = np.maximum(windows.var(axis=0) * VARIANCE_SCALE,
                 diff2.min(axis=0) / -np.log(MIN_NEAREST_WEIGHT))
  c = np.maximum(c, MIN_VARIANCE)
  rows, cols, vals = [], [], []
  for k, (dy, dx) in enumerate(neighbours):
    ys, xs = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))
    ys_n, xs_n = slice(max(0, dy), h - max(0, -dy)), slice(max(0, dx), w - max(0, -dx))
    rows.append(index[ys, xs].ravel())
    cols.append(index[ys_n, xs_n].ravel())
    vals.append(np.exp(-diff2[k, ys, xs] / c[ys, xs]).ravel())
  rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
  sums = np.bincount(rows, weights=vals, minlength=n)
  vals = vals / sums[rows]
  free = ~mask.ravel()
  keep = free[rows]   # hinted rows are the identity: no neighbour terms
  a = (scipy.sparse.identity(n, format="csr")
       - scipy.sparse.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(n, n)))
  rhs = np.where(mask.ravel()[:, None], np.asarray(hint_ab, np.float64).reshape(n, 2), 0.0)
  out = scipy.sparse.linalg.spsolve(a.tocsc(), rhs, permc_spec=PERMUTATION)
  return out.reshape(h, w, 2).astype(np.float32)
