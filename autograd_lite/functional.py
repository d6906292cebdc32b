"""Composite functions built from the primitives: log-densities, KL divergences, entropies, and the
shape helpers stack, split and chunk.

Nothing here has its own backward: each function is a few primitive calls that read like its formula,
and the engine differentiates through them. They are written to be numerically safe in float32:

* Gaussians are parameterised by their **log-variance** ``logvar = log sigma^2``; the variance only ever
  appears as ``exp(logvar)`` or ``exp(-logvar)``, never divided by or taken the log of.
* Discrete distributions are handled as **log-probabilities** (from ``log_softmax``), so no function ever
  computes ``log(p + 1e-10)``; ``0 * log 0`` cannot occur because a log-probability from
  ``log_softmax`` of finite logits is finite.
* Bernoulli likelihoods take **logits** and use ``softplus``, which never overflows.

Conventions: every density, KL and entropy is **summed over the last axis** (the event axis: the
coordinates of a diagonal Gaussian, the classes of a categorical) and keeps all leading axes, which
broadcast as usual. So ``gaussian_log_prob`` of a batch of shape (B, D) has shape (B,).
"""
from __future__ import annotations

import math

from . import ops
from .tensor import Tensor

LOG_2PI = math.log(2.0 * math.pi)


# -- Gaussians -------------------------------------------------------------------------------------

def gaussian_log_prob(x, mean, logvar) -> Tensor:
    """log N(x | mean, diag(exp(logvar))), summed over the last axis.

        log N = -1/2 sum_d [ log(2 pi) + logvar_d + (x_d - mean_d)^2 exp(-logvar_d) ]
    """
    return -0.5 * ops.sum(LOG_2PI + logvar + ops.square(x - mean) * ops.exp(-logvar), axis=-1)


def gaussian_kl(mean_q, logvar_q, mean_p, logvar_p) -> Tensor:
    """KL( N(mean_q, exp(logvar_q)) || N(mean_p, exp(logvar_p)) ) of diagonal Gaussians, summed over the last axis.

        KL = 1/2 sum_d [ logvar_p - logvar_q + (exp(logvar_q) + (mean_q - mean_p)^2) / exp(logvar_p) - 1 ]

    The variance ratio is computed as exp(logvar_q - logvar_p), one exponential of a difference.
    """
    ratio = ops.exp(logvar_q - logvar_p)
    mahalanobis = ops.square(mean_q - mean_p) * ops.exp(-logvar_p)
    return 0.5 * ops.sum(logvar_p - logvar_q + ratio + mahalanobis - 1.0, axis=-1)


def standard_gaussian_kl(mean, logvar) -> Tensor:
    """KL( N(mean, exp(logvar)) || N(0, I) ), summed over the last axis.

        KL = 1/2 sum_d [ exp(logvar_d) + mean_d^2 - 1 - logvar_d ]
    """
    return 0.5 * ops.sum(ops.exp(logvar) + ops.square(mean) - 1.0 - logvar, axis=-1)


def gaussian_sample(mean, logvar, noise) -> Tensor:
    """The reparameterised sample mean + exp(logvar / 2) * noise, with noise ~ N(0, I) given.

    The randomness is an input, so the sample is a differentiable function of mean and logvar.
    """
    return mean + ops.exp(0.5 * logvar) * noise


def soft_clamp(x, limit: float) -> Tensor:
    """limit * tanh(x / limit): close to x for |x| << limit, smoothly bounded to (-limit, limit).

    Unlike a hard clamp its gradient never becomes exactly zero, so a saturated unit can recover.
    """
    return limit * ops.tanh(x * (1.0 / limit))


# -- Bernoulli -------------------------------------------------------------------------------------

def bernoulli_log_prob_logits(y, logits) -> Tensor:
    """log Bernoulli(y | sigmoid(logits)), summed over the last axis, for y in [0, 1].

        log p = y log sigmoid(l) + (1 - y) log(1 - sigmoid(l)) = y l - softplus(l)

    which is exact and finite for any logit (no sigmoid is ever passed to a log). For y strictly between
    0 and 1 (greyscale pixels) it is the negative binary cross-entropy, as in the original code.
    """
    return -ops.sum(ops.softplus(logits) - y * logits, axis=-1)


# -- categorical -----------------------------------------------------------------------------------

def categorical_kl(log_q, log_p) -> Tensor:
    """KL(q || p) = sum_k q_k (log q_k - log p_k) of categoricals given as log-probabilities (last axis)."""
    return ops.sum(ops.exp(log_q) * (log_q - log_p), axis=-1)


def entropy(log_p) -> Tensor:
    """H(p) = -sum_k p_k log p_k of a categorical given as log-probabilities (last axis)."""
    return -ops.sum(ops.exp(log_p) * log_p, axis=-1)


def entropy_from_logits(logits) -> Tensor:
    """H(softmax(logits)), through log_softmax (never log of a probability)."""
    return entropy(ops.log_softmax(logits, axis=-1))


def log_mean_exp(x, axis=0) -> Tensor:
    """log( (1/n) sum_i exp(x_i) ) over one axis, as logsumexp minus log n (never overflows)."""
    n = x.shape[axis]
    return ops.logsumexp(x, axis=axis) - math.log(n)


# -- shapes and the elementwise minimum, from primitives -------------------------------------------

def stack(tensors, axis: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis."""
    tensors = list(tensors)
    axis = axis % (tensors[0].ndim + 1)
    expanded = [ops.reshape(t, t.shape[:axis] + (1,) + t.shape[axis:]) for t in tensors]
    return ops.concat(expanded, axis=axis)


def split(x: Tensor, sections, axis: int = 0) -> list:
    """Split into pieces: ``sections`` an int (equal pieces) or a list of piece sizes."""
    axis = axis % x.ndim
    n = x.shape[axis]
    if isinstance(sections, int):
        if sections < 1:
            raise ValueError(f"split needs a number of pieces >= 1, got {sections}")
        if n % sections:
            raise ValueError(f"cannot split axis of length {n} into {sections} equal pieces")
        sizes = [n // sections] * sections
    else:
        sizes = list(sections)
        if any(s < 0 for s in sizes):
            raise ValueError(f"piece sizes {sizes} must not be negative")
        if sum(sizes) != n:
            raise ValueError(f"piece sizes {sizes} do not add up to the axis length {n}")
    pieces, start, lead = [], 0, (slice(None),) * axis
    for s in sizes:
        pieces.append(ops.getitem(x, lead + (slice(start, start + s),)))
        start += s
    return pieces


def chunk(x: Tensor, chunks: int, axis: int = 0) -> list:
    """Split into ``chunks`` pieces of ceil(n / chunks) (the last may be smaller), as torch.chunk."""
    if chunks < 1:
        raise ValueError(f"chunk needs a number of chunks >= 1, got {chunks}")
    n = x.shape[axis % x.ndim]
    if n == 0:
        return [x]
    size = -(-n // chunks)
    sizes = [size] * (n // size) + ([n % size] if n % size else [])
    return split(x, sizes, axis)


def minimum(a, b) -> Tensor:
    """Elementwise min; at ties the gradient is shared equally."""
    return ops.neg(ops.maximum(ops.neg(a) if isinstance(a, Tensor) else -a,
                               ops.neg(b) if isinstance(b, Tensor) else -b))
