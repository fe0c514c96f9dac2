"""Linear CKA between two representations of the same frames (or utterances), and layer x layer maps.

CKA(X, Y) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with linear kernels K = X Xᵀ, L = Y Yᵀ
(Kornblith et al., 2019). Everything is computed from feature-space sums accumulated over row
chunks, so n (frames) may be millions: memory is O(D² + chunk x D), never n x n.
- `debiased=False`: the usual (biased) estimator on column-centred X and Y:
  ||YᵀX||²_F / (||XᵀX||_F ||YᵀY||_F).
- `debiased=True`: the unbiased HSIC estimator of Song et al. (2012) in each place, as proposed for
  CKA by Nguyen et al. (2021); it removes the upward bias of CKA when D is not small against n.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from probes.vocabulary import Layers

__all__ = ["cka", "similarity"]


@dataclass
class _Moments:
    """Sums over rows i of products of x_i, y_i (float64), enough for biased and unbiased HSIC."""

    n: int
    xty: np.ndarray  # [Dx, Dy] sum x_i y_iᵀ
    xtx: np.ndarray
    yty: np.ndarray
    sx: np.ndarray  # [Dx] sum x_i
    sy: np.ndarray
    x_norm2_y: np.ndarray  # [Dy] sum |x_i|² y_i
    y_norm2_x: np.ndarray  # [Dx] sum |y_i|² x_i
    x_norm2_x: np.ndarray  # [Dx] sum |x_i|² x_i
    y_norm2_y: np.ndarray
    xx_yy: float  # sum |x_i|² |y_i|²
    xx_xx: float
    yy_yy: float
    xx: float  # sum |x_i|²
    yy: float


def _moments(x: Any, y: Any, mean_x: np.ndarray, mean_y: np.ndarray, chunk: int) -> _Moments:
    n, dx, dy = len(x), mean_x.shape[0], mean_y.shape[0]
    m = _Moments(n, np.zeros((dx, dy)), np.zeros((dx, dx)), np.zeros((dy, dy)), np.zeros(dx),
                 np.zeros(dy), np.zeros(dy), np.zeros(dx), np.zeros(dx), np.zeros(dy),
                 0.0, 0.0, 0.0, 0.0, 0.0)  # fmt: skip
    for start in range(0, n, chunk):
        # Centring first keeps the float64 sums well conditioned (activations have large means).
        xc = np.asarray(x[start : start + chunk], dtype=np.float64) - mean_x
        yc = np.asarray(y[start : start + chunk], dtype=np.float64) - mean_y
        nx, ny = (xc * xc).sum(1), (yc * yc).sum(1)
        m.xty += xc.T @ yc
        m.xtx += xc.T @ xc
        m.yty += yc.T @ yc
        m.sx += xc.sum(0)
        m.sy += yc.sum(0)
        m.x_norm2_y += nx @ yc
        m.y_norm2_x += ny @ xc
        m.x_norm2_x += nx @ xc
        m.y_norm2_y += ny @ yc
        m.xx_yy += float(nx @ ny)
        m.xx_xx += float(nx @ nx)
        m.yy_yy += float(ny @ ny)
        m.xx += float(nx.sum())
        m.yy += float(ny.sum())
    return m


def _unbiased_hsic(
    n: int, tr_kl: float, diag_kl: float, sum_k: float, sum_l: float, k1_l1: float
) -> float:
    """Song et al.'s estimator from the pieces of K̃, L̃ (K, L with zeroed diagonals).

    tr_kl = tr(KL), diag_kl = sum_i K_ii L_ii, sum_k = 1ᵀK̃1, sum_l = 1ᵀL̃1, k1_l1 = (K̃1)ᵀ(L̃1).
    """
    trace = tr_kl - diag_kl
    return (trace + sum_k * sum_l / ((n - 1) * (n - 2)) - 2 * k1_l1 / (n - 2)) / (n * (n - 3))


def _hsic_pair(m: _Moments) -> tuple[float, float, float]:
    """Unbiased HSIC(K, L), HSIC(K, K), HSIC(L, L) from the accumulated moments."""
    n = m.n
    sum_k = float(m.sx @ m.sx) - m.xx  # 1ᵀK̃1 = |Σx|² - Σ|x|²
    sum_l = float(m.sy @ m.sy) - m.yy
    # (K̃1)_i = x_i·Σx - |x_i|², so (K̃1)ᵀ(L̃1) expands into the accumulated sums.
    k1_l1 = (
        float(m.sx @ m.xty @ m.sy) - float(m.sx @ m.y_norm2_x) - float(m.sy @ m.x_norm2_y) + m.xx_yy
    )
    k1_k1 = float(m.sx @ m.xtx @ m.sx) - 2 * float(m.sx @ m.x_norm2_x) + m.xx_xx
    l1_l1 = float(m.sy @ m.yty @ m.sy) - 2 * float(m.sy @ m.y_norm2_y) + m.yy_yy
    kl = _unbiased_hsic(n, float((m.xty**2).sum()), m.xx_yy, sum_k, sum_l, k1_l1)
    kk = _unbiased_hsic(n, float((m.xtx**2).sum()), m.xx_xx, sum_k, sum_k, k1_k1)
    ll = _unbiased_hsic(n, float((m.yty**2).sum()), m.yy_yy, sum_l, sum_l, l1_l1)
    return kl, kk, ll


def cka(x: Any, y: Any, debiased: bool = False, *, chunk: int = 65536) -> float:
    """Linear CKA between two representations of the same n items.

    Args:
        x: [n, Dx] array-like (numpy, xarray, dask or zarr; read chunk by chunk).
        y: [n, Dy], row i the same frame or utterance as x's row i.
        debiased: use the unbiased HSIC estimator (needs n >= 4; may be slightly negative).
        chunk: rows per chunk.
    Returns:
        CKA in [0, 1] (biased); the debiased value is near 0 for independent representations.
    """
    if getattr(x, "ndim", 2) != 2 or getattr(y, "ndim", 2) != 2:
        raise ValueError("cka takes two 2-d arrays [n, D]")
    if len(x) != len(y):
        raise ValueError(f"cka needs the same items in x and y: x has {len(x)} rows, y {len(y)}")
    if len(x) < (4 if debiased else 2):
        raise ValueError(f"cka needs at least {4 if debiased else 2} rows, got {len(x)}")
    mean_x = _column_mean(x, chunk)
    mean_y = _column_mean(y, chunk)
    m = _moments(x, y, mean_x, mean_y, chunk)
    if debiased:
        kl, kk, ll = _hsic_pair(m)
    else:
        kl, kk, ll = float((m.xty**2).sum()), float((m.xtx**2).sum()), float((m.yty**2).sum())
    if kk <= 0 or ll <= 0:
        raise ValueError("cka is undefined for a constant representation (all rows equal)")
    return kl / np.sqrt(kk * ll)


def _column_mean(x: Any, chunk: int) -> np.ndarray:
    total = 0.0
    for start in range(0, len(x), chunk):
        total = total + np.asarray(x[start : start + chunk], dtype=np.float64).sum(0)
    return np.asarray(total) / len(x)


def similarity(
    model_a: Any,
    model_b: Any,
    layers: Layers = "all",
    source: Any = None,
    *,
    layers_b: Layers | None = None,
    debiased: bool = False,
    max_frames: int | None = None,
    seed: int = 0,
    corpus: Any = None,
    progress: bool = True,
    **extract_options: Any,
) -> xr.DataArray:
    """Layer x layer CKA between two models on the same audio.

    Args:
        model_a: anything `probes.extract` takes, or an activation store (path or Dataset).
        model_b: the same for the second model.
        layers: layers of model_a ("all", an int, a list or a range); `layers_b` those of
            model_b (default the same).
        source: what to extract from (default: the corpus's captions ABX set, as `probes.abx`).
        max_frames: use a random subset of this many frames (seeded) to bound the cost.
    Returns:
        DataArray (layer_a, layer_b) of CKA.
    """
    from probes.activations import activations_for

    ds_a = activations_for(
        model_a, layers, source, corpus=corpus, progress=progress, **extract_options
    )
    ds_b = activations_for(
        model_b,
        layers if layers_b is None else layers_b,
        source,
        corpus=corpus,
        progress=progress,
        **extract_options,
    )
    order_a, order_b = _aligned_frames(ds_a, ds_b)
    if max_frames is not None and max_frames < len(order_a):
        pick = np.sort(np.random.default_rng(seed).choice(len(order_a), max_frames, replace=False))
        order_a, order_b = order_a[pick], order_b[pick]
    la, lb = ds_a.layer.values.tolist(), ds_b.layer.values.tolist()
    values = np.empty((len(la), len(lb)))
    cache_b = {j: ds_b.activations.sel(layer=j).values[order_b] for j in lb}
    for row, i in enumerate(la):
        x = ds_a.activations.sel(layer=i).values[order_a]
        for col, j in enumerate(lb):
            values[row, col] = cka(x, cache_b[j], debiased=debiased)
    return xr.DataArray(
        values,
        dims=("layer_a", "layer_b"),
        coords={"layer_a": la, "layer_b": lb},
        name="cka",
        attrs={
            "probe": "cka",
            "debiased": debiased,
            "model_a": ds_a.attrs.get("model", ""),
            "model_b": ds_b.attrs.get("model", ""),
            "frames": len(order_a),
        },
    )


def _aligned_frames(ds_a: xr.Dataset, ds_b: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices of both stores in a common order (utterance by utterance, frame by frame)."""
    ids_a = ds_a.utterance.values.tolist()
    position_b = {u: i for i, u in enumerate(ds_b.utterance.values.tolist())}
    missing = [u for u in ids_a if u not in position_b]
    if missing:
        raise ValueError(
            f"the two stores hold different utterances ({missing[:3]} only in the first)"
        )
    n_a, off_a = ds_a.n_frames.values, ds_a.offset.values
    n_b, off_b = ds_b.n_frames.values, ds_b.offset.values
    order_a, order_b = [], []
    for i, u in enumerate(ids_a):
        j = position_b[u]
        if n_a[i] != n_b[j]:
            raise ValueError(
                f"utterance {u} has {n_a[i]} frames in one store and {n_b[j]} in the other: "
                "the models' frame rates differ"
            )
        order_a.append(np.arange(off_a[i], off_a[i] + n_a[i]))
        order_b.append(np.arange(off_b[j], off_b[j] + n_b[j]))
    return np.concatenate(order_a), np.concatenate(order_b)
