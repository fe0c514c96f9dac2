"""The phone probe's classifiers: one multinomial logistic regression per layer, all fitted at once.

Each layer's classifier minimises scikit-learn's LogisticRegression objective on frames
standardised as its StandardScaler does, and stops by its rule (`fit_predict`). What makes it
fast is a preconditioner: the weights are searched as W = P V, where P P^T approximates the
inverse of the objective's Hessian (from the frames' covariance, each class's share of the
softmax's curvature and the penalty), so that the problem L-BFGS sees is about equally curved in
every direction, and it needs several times fewer iterations than scikit-learn's L-BFGS on W
itself. The objective, and so its minimum, is unchanged.

With many dims the fit is bound by its matrix products over the frames: the covariance (once per
layer) and two per iteration (the logits and the gradient). Each is laid out as the BLAS runs it
fastest: the covariance as its lower triangle in panels (about half a full product's work), the
gradient as R^T X ([K, N] x [N, D], both operands read along their rows), in chunks of frames
that stay in cache between the two. With few dims the passes over the [A, K, c] logits cost more
than the products, and there are as few of them as the softmax allows (docs/probes.md).
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_predict"]

# The fit runs over chunks of frames: at most this many logits per chunk (about 1 MB, within a
# core's L2 cache) and at most this many frame values (8 MB, within its share of L3).
CACHE_FLOATS = 1 << 18
FRAME_FLOATS = 1 << 21
# Below this many dims (few): every op of the fit is small and runs on one thread, as a parallel
# region would cost more than it saves (far more on a loaded machine, where each waits for a time
# slice); the intercept rides in the products as a column of ones; and each class's
# preconditioner comes from an eigendecomposition of the covariance (`_preconditioner`).
FEW_DIMS = 256
# Dims per panel of the covariance's lower triangle: narrow enough that the triangle saves work,
# wide enough that each panel's product still runs near the BLAS's peak.
PANEL = 128


def fit_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    regularization: float = 1.0,
    *,
    max_iter: int = 300,
    tolerance: float = 1e-4,
    memory: int = 30,
) -> np.ndarray:
    """Fit one softmax classifier per layer at once; predict the test frames.

    Each layer's classifier minimises scikit-learn's LogisticRegression objective on frames
    standardised as its StandardScaler does: the mean cross-entropy plus |W|^2 / (2 C N), the
    intercept unpenalised. Like scikit-learn's lbfgs it starts from zero and stops a layer after
    `max_iter` iterations or once the largest entry of that layer's gradient (weights and
    intercept) is at most `tolerance`, or when float32 cannot decrease it any further.

    Args:
        train_x: [L, N, D] frames of each layer; train_y: [N] class ids 0..K-1.
        test_x: [L, M, D].
        regularization: C of scikit-learn's LogisticRegression (its default 1.0).
        max_iter: L-BFGS iterations (scikit-learn's default for lbfgs is 100, the probe used 300).
        tolerance: gradient tolerance (scikit-learn's `tol`).
        memory: L-BFGS history (curvature pairs kept).
    Returns:
        [L, M] predicted class ids.
    """
    import torch

    threads = torch.get_num_threads()
    if np.shape(train_x)[2] < FEW_DIMS:
        torch.set_num_threads(1)
    try:
        return _fit_predict(
            torch, train_x, train_y, test_x, regularization, max_iter, tolerance, memory
        )
    finally:
        torch.set_num_threads(threads)


def _fit_predict(torch, train_x, train_y, test_x, regularization, max_iter, tolerance, memory):
    # Callers may hold inference mode (a grid does); nothing here needs autograd.
    with torch.inference_mode(False), torch.no_grad():
        # With few dims the intercept rides in the products as a column of ones (a pass less
        # over the logits each way); with many, the extra column would slow the products more.
        ones = np.shape(train_x)[2] < FEW_DIMS
        x, mean, scale, covariance = standardise(torch, train_x, ones=ones)
        y = torch.from_numpy(np.asarray(train_y, np.int64))
        problem = _Softmax(torch, x, y, int(y.max()) + 1, regularization, covariance)
        del x  # the problem holds the standardised frames
        weights, bias = _lbfgs(
            torch, problem, max_iter=max_iter, tolerance=tolerance, memory=memory
        )
        test = torch.from_numpy(np.ascontiguousarray(test_x, dtype=np.float32))
        test = (test - mean).div_(scale)
        return torch.baddbmm(bias[:, None, :], test, weights).argmax(dim=2).numpy()


def standardise(torch, frames: np.ndarray, *, ones: bool = False):
    """Frames standardised as scikit-learn's StandardScaler does, on one float32 copy (with a
    column of ones beside them if `ones`), and the covariance of the standardised frames from the
    same pass over them.

    Args:
        frames: [L, N, D] (not modified).
    Returns:
        x [L, N, D] float32 standardised (or [L, N, D + 1], then 1), mean and scale [L, 1, D] (a
        dim that never varies keeps scale 1, as StandardScaler leaves it), covariance [L, D, D]
        float64 (the standardised frames' x^T x / N).
    """
    frames = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
    layers, n, dim = frames.shape
    mean = frames.mean(dim=1, keepdim=True)
    x = torch.empty(layers, n, dim + ones)  # the copy the fit works on
    x[:, :, dim:] = 1.0
    centred = torch.sub(frames, mean, out=x[:, :, :dim])
    # The centred frames' Gram matrix holds their variances on its diagonal: no separate pass
    # for the scale, and the covariance of the scaled frames is the Gram matrix rescaled.
    gram = lower_gram(torch, centred).double() / n
    scale = gram.diagonal(dim1=1, dim2=2).sqrt()
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    gram /= scale[:, :, None] * scale[:, None, :]
    covariance = gram.tril() + gram.tril(-1).transpose(1, 2)
    scale = scale.float()[:, None, :]
    centred.div_(scale)
    return x, mean, scale, covariance


def lower_gram(torch, x, *, panel: int = PANEL):
    """x^T x on and below its diagonal, computed in panels of `panel` rows, each only as far as
    its diagonal block: about half a full product's work.

    Args:
        x: [L, N, D].
    Returns:
        [L, D, D] float32: its lower triangle is that of x^T x; above the diagonal blocks it is
        zero, within them x^T x.
    """
    layers, _, dim = x.shape
    gram = torch.zeros(layers, dim, dim)
    for start in range(0, dim, panel):
        end = min(start + panel, dim)
        torch.bmm(x[:, :, start:end].transpose(1, 2), x[:, :, :end], out=gram[:, start:end, :end])
    return gram


class _Softmax:
    """Each layer's objective and gradient in preconditioned coordinates theta = (V, c).

    The weights of class k are W_k = P diag(scale_k) V_k (`_preconditioner`) and its intercept
    b_k = c_k / sqrt(h_k), with h_k the softmax's curvature for class k: the objective's Hessian
    in (V, c) is then about the identity.
    """

    def __init__(self, torch, x, y, classes, regularization, covariance):
        self.torch, self.x, self.y = torch, x, y
        onehot = torch.nn.functional.one_hot(y, classes).to(x.dtype)
        self.negative_onehot = onehot.T.neg().contiguous()  # [K, N]
        n, dim = x.shape[1], covariance.shape[1]
        self.ones = x.shape[2] > dim  # x: [L, N, D], or [L, N, D + 1] with a column of ones
        self.dim, self.classes = dim, classes
        self.penalty = 1.0 / (regularization * n)
        # Each class's share h of the softmax's curvature: 1/K (1 - 1/K) at the start, f (1 - f)
        # once the intercepts fit the class frequencies f; their geometric mean took fewer
        # iterations than either at 32 and 768 dims.
        uniform = (1 - 1 / classes) / classes
        share = (torch.bincount(y, minlength=classes).double() / n).clamp_min(1 / n)
        curvature = (uniform * share * (1 - share)).sqrt().clamp_min(1 / n).float()  # [K]
        self.precondition, self.class_scale = _preconditioner(
            torch, covariance, curvature, self.penalty
        )
        self.bias_scale = curvature.rsqrt()  # [K]
        self.size = dim * classes + classes

    def keep(self, rows):
        """Drop the layers whose fit is over (rows: [A] bool, those that go on). Returns the rows
        that go on in their new order ([A'] indices): a dropped layer's frames are overwritten by
        those of a layer from the end, so that the fit goes on over x[:A'] with the fewest
        copies of frames."""
        count = int(rows.sum())
        holes = [row for row in range(count) if not rows[row]]
        movers = [row for row in range(count, len(rows)) if rows[row]]
        order = list(range(count))
        for hole, mover in zip(holes, movers, strict=True):
            for name in ("x", "precondition", "class_scale"):
                getattr(self, name)[hole] = getattr(self, name)[mover]
            order[hole] = mover
        for name in ("x", "precondition", "class_scale"):
            setattr(self, name, getattr(self, name)[:count])
        return self.torch.tensor(order)

    def weights(self, theta, rows=None):
        """W [A, D, K] and b [A, K] from theta [A, size] of the given rows (default: every layer
        still being fitted)."""
        precondition = self.precondition if rows is None else self.precondition[rows]
        v = theta[:, : self.dim * self.classes].reshape(len(theta), self.dim, self.classes)
        class_scale = self.class_scale if rows is None else self.class_scale[rows]
        w = self.torch.bmm(precondition, v * class_scale)
        return w, theta[:, -self.classes :] * self.bias_scale

    def __call__(self, theta, rows=None):
        """Objective [A] (float64), gradient in theta [A, size] and the largest entry of the
        gradient in (W, b) [A] (scikit-learn's convergence test) of the given rows."""
        torch = self.torch
        w, b = self.weights(theta, rows)
        x = self.x if rows is None else self.x[rows]
        layers, n = x.shape[:2]
        loss = torch.zeros(layers, dtype=torch.float64)
        # Frames in chunks whose logits and frames stay in cache from the logits' product to the
        # gradient's: with few dims the fit is bound by memory traffic over the [A, N, K] logits;
        # with many, the gradient's product then reads its frames from cache.
        size = max(
            64,
            min(CACHE_FLOATS // (layers * self.classes), FRAME_FLOATS // (layers * self.dim)),
        )
        # With a column of ones, weights and intercept are one [A, K, D + 1] matrix: the products
        # then add the intercept and sum its gradient.
        weights = torch.cat([w.transpose(1, 2), b[:, :, None]], dim=2) if self.ones else None
        grad = torch.zeros(layers, self.classes, x.shape[2])
        grad_b = torch.zeros_like(b)
        for start in range(0, n, size):
            chunk = x[:, start : start + size]
            # Logits as [A, K, c]: each frame's softmax then reduces over rows of contiguous
            # frames, several times faster than over the last dim of [A, c, K] with 40 classes.
            # With many dims the BLAS is faster at [A, c, K]: that product, then a transposed copy.
            if self.ones:
                logits = torch.bmm(weights, chunk.transpose(1, 2))
            else:
                logits = torch.baddbmm(b[:, None, :], chunk, w).transpose(1, 2).contiguous()
            z = logits.sub_(logits.amax(dim=1, keepdim=True))
            labels = self.y[None, None, start : start + size].expand(layers, 1, -1)
            picked = z.gather(1, labels)  # [A, 1, c]
            p = z.exp_()
            total = p.sum(dim=1, keepdim=True)
            loss += (total.log() - picked).sum(dim=(1, 2), dtype=torch.float64)
            # d (summed loss) / d logits: softmax minus one-hot, in one pass.
            residual = torch.addcdiv(self.negative_onehot[:, start : start + size], p, total)
            # As [K, c] x [c, D]: the BLAS runs it about 1.6x faster than X^T R at 768 dims.
            grad.baddbmm_(residual, chunk, alpha=1.0 / n)
            if not self.ones:
                grad_b += residual.sum(dim=2) / n
        grad_w = grad[:, :, : self.dim].transpose(1, 2).add_(w, alpha=self.penalty)
        grad_b = grad[:, :, self.dim] if self.ones else grad_b
        loss = loss / n + self.penalty / 2 * w.pow(2).sum(dim=(1, 2), dtype=torch.float64)
        largest = torch.maximum(grad_w.abs().amax(dim=(1, 2)), grad_b.abs().amax(dim=1))
        precondition = self.precondition if rows is None else self.precondition[rows]
        class_scale = self.class_scale if rows is None else self.class_scale[rows]
        grad_v = torch.bmm(precondition.transpose(1, 2), grad_w).mul_(class_scale)
        grad = torch.cat([grad_v.reshape(layers, -1), grad_b * self.bias_scale], dim=1)
        return loss, grad, largest


def _preconditioner(torch, covariance, curvature, penalty):
    """P [L, D, D] and the class scales [L, D or 1, K] of W_k = P diag(scale_k) V_k, from the
    frames' covariance S [L, D, D], each class's curvature h [K] and the penalty.

    Class k's weights have a Hessian of about h_k S + penalty I = U diag(h_k s + penalty) U^T:
    with few dims, where an eigendecomposition is cheap, that is P = U and scale_k = (h_k s +
    penalty)^-1/2. With many, one Cholesky factor R R^T = S / K + penalty I (several times
    cheaper) serves every class, scaled by (K h_k)^-1/2, exact but for the penalty's share.
    float32 is enough for U: the preconditioner only has to be invertible, not exact.
    """
    layers, dim, _ = covariance.shape
    if dim < FEW_DIMS:
        spectrum, basis = torch.linalg.eigh(covariance.float())
        scale = (spectrum.clamp_min(0)[:, :, None] * curvature + penalty).rsqrt()
        return basis.contiguous(), scale
    classes = len(curvature)
    factor = torch.linalg.cholesky(covariance / classes + penalty * torch.eye(dim))
    identity = torch.eye(dim, dtype=torch.float64).expand(layers, dim, dim)
    inverse = torch.linalg.solve_triangular(factor, identity, upper=False)
    scale = (curvature * classes).rsqrt().expand(layers, 1, classes).contiguous()
    return inverse.transpose(1, 2).float().contiguous(), scale


def _lbfgs(torch, problem, *, max_iter, tolerance, memory):
    """L-BFGS on every layer at once, each with its own history and line search; a layer leaves
    the batch when it stops. Returns W [L, D, K] and b [L, K]."""
    layers = len(problem.x)
    weights, biases = [None] * layers, [None] * layers
    origin = list(range(layers))  # the layer of each row still being fitted
    theta = torch.zeros(layers, problem.size)
    loss, grad, largest = problem(theta)
    steps, changes = torch.zeros(2, layers, memory, problem.size)
    inverse_curvature, gamma = torch.zeros(layers, memory), torch.ones(layers)
    stalled = torch.zeros(layers, dtype=torch.bool)
    for iteration in range(max_iter + 1):
        over = (largest <= tolerance) | stalled | (iteration == max_iter)
        if over.any():
            w, b = problem.weights(theta[over], over)
            for row, layer in enumerate(np.flatnonzero(over.numpy())):
                weights[origin[layer]], biases[origin[layer]] = w[row], b[row]
            if over.all():
                break
            order = problem.keep(~over)
            origin = [origin[row] for row in order.tolist()]
            theta, loss, grad, steps, changes, inverse_curvature, gamma = (
                t[order] for t in (theta, loss, grad, steps, changes, inverse_curvature, gamma)
            )
        newest_first = [(iteration - 1 - j) % memory for j in range(min(iteration, memory))]
        direction = _two_loop(grad, steps, changes, inverse_curvature, gamma, newest_first)
        step, new = _line_search(torch, problem, theta, loss, grad, direction)
        change = new[1] - grad
        curvature, length = (step * change).sum(dim=1), (change * change).sum(dim=1)
        valid = curvature > 1e-10 * length  # the objective is convex: only rounding fails this
        slot = iteration % memory
        steps[:, slot], changes[:, slot] = step * valid[:, None], change * valid[:, None]
        inverse_curvature[:, slot] = torch.where(valid, 1 / curvature, 0)
        gamma = torch.where(valid, curvature / length, gamma)
        theta, (loss, grad, largest), stalled = theta + step, new[:3], new[3]
    return torch.stack(weights), torch.stack(biases)


def _two_loop(grad, steps, changes, inverse_curvature, gamma, newest_first):
    """The L-BFGS direction -H grad, batched over rows ([A, size]); H from the stored pairs."""
    q, alphas = grad.clone(), []
    for slot in newest_first:
        alpha = inverse_curvature[:, slot] * (steps[:, slot] * q).sum(dim=1)
        q -= alpha[:, None] * changes[:, slot]
        alphas.append(alpha)
    r = q * gamma[:, None]
    for slot, alpha in zip(reversed(newest_first), reversed(alphas), strict=True):
        beta = inverse_curvature[:, slot] * (changes[:, slot] * r).sum(dim=1)
        r += steps[:, slot] * (alpha - beta)[:, None]
    return -r


def _line_search(torch, problem, theta, loss, grad, direction, *, tries=20):
    """Per row, a step t * direction that decreases the objective, trying t = 1 first.

    A step is taken when it decreases the objective enough (Armijo) or when the objective still
    slopes down at it: the objective is convex, so it then decreased even where float32 rounding
    hides it. A refused step shrinks to the secant root of the slope (within 0.1..0.9 of it).
    Returns the step [A, size] and (objective, gradient, largest entry, stalled [A]) after it;
    a row that found no step stays where it was and is marked stalled.
    """
    slope = (grad * direction).sum(dim=1)
    uphill = slope >= 0  # rounding in a spent history: steepest descent instead
    if uphill.any():
        direction[uphill] = -grad[uphill]
        slope[uphill] = -(grad[uphill] ** 2).sum(dim=1)
    t = torch.ones(len(theta))
    new_loss, new_grad, new_largest = problem(theta + direction)
    pending = torch.ones(len(theta), dtype=torch.bool)
    for _ in range(tries):
        rows = pending.nonzero()[:, 0]
        new_slope = (new_grad[rows] * direction[rows]).sum(dim=1)
        taken = (new_loss[rows] <= loss[rows] + 1e-4 * t[rows] * slope[rows]) | (new_slope <= 0)
        pending[rows[taken]] = False
        if not pending.any():
            break
        rows, new_slope = rows[~taken], new_slope[~taken]
        ratio = (slope[rows] / (slope[rows] - new_slope)).nan_to_num(0.5).clamp(0.1, 0.9)
        t[rows] *= ratio
        at = theta[rows] + t[rows, None] * direction[rows]
        new_loss[rows], new_grad[rows], new_largest[rows] = problem(at, rows)
    t[pending] = 0
    new_loss[pending], new_grad[pending] = loss[pending], grad[pending]
    return t[:, None] * direction, (new_loss, new_grad, new_largest, pending)
