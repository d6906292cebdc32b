"""GMVAEConfig: what determines a GMVAE's architecture and objective, and the one check of those fields.

    from gmvae_np.config import GMVAEConfig
    config = GMVAEConfig(input_shape=(2,), likelihood="gaussian", K=5, Dx=2, Dw=2, hidden=16)

:func:`check_model_fields` is the one place the model's fields are checked. ``GMVAEConfig`` calls it in
the library's words ("GMVAEConfig.K must be an int >= 2 ..."); ``Settings.validate`` (gmvae_np.presets)
calls it with ``cli=True``, in the command line's words ("--K must be at least 2 ..."), before the data
set, and so the input shape, is known.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from . import elbo

__all__ = ["GMVAEConfig", "check_model_fields", "CONV_INPUT_SHAPES", "ARCHS", "WEIGHTS", "DTYPES"]

CONV_INPUT_SHAPES = ((1, 28, 28),)
"""Input shapes the convolutional architecture is built for (its kernel sizes fit 28x28 exactly)."""

ARCHS = ("fc", "conv")
WEIGHTS = ("alpha", "eta", "lam", "balance", "invariance", "neighbour_weight", "neighbour_code_weight")
"""The objective's weights a config holds; ``loss(weights=...)`` may override them, and ``kl``, per batch."""
DTYPES = ("float32", "float64")
CHOICES = (("arch", ARCHS), ("likelihood", elbo.LIKELIHOODS), ("variant", elbo.VARIANTS), ("dtype", DTYPES))
SIZES = ("Dx", "Dw", "hidden", "mc")
NEEDS_CV = {"invariance": "q(z|y) for an image and its moved copy", "neighbour_weight": "q(z|y) for a row and its neighbour",
            "neighbour_code_weight": "q(x|y) for a row and its neighbour, in the neighbour term's pass"}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_model_fields(values: dict, *, cli: bool = False) -> None:
    """Raise ValueError naming the first bad model field among ``values`` (a field absent is not checked).

    ``cli``: name the fields as the command line spells them (--neighbour-weight) and say "whole number";
    otherwise as ``GMVAEConfig.<field>``. The settings' own choices (likelihood "auto") are theirs to check.
    """
    def name(f: str) -> str:
        return "--" + f.replace("_", "-") if cli else f"GMVAEConfig.{f}"

    for f, allowed in CHOICES:
        if f in values and values[f] not in allowed:
            shown = ", ".join(allowed) if cli else ", ".join(map(repr, allowed))
            raise ValueError(f"{name(f)} must be one of {shown}; got {values[f]!r}")
    if "K" in values:
        K = values["K"]
        if cli and (not _is_int(K) or K < 1):
            raise ValueError(f"--K must be a positive whole number; got {K!r}")
        if cli and K < 2:
            raise ValueError(f"--K must be at least 2 (a mixture of one component has no clusters); got {K}")
        if not _is_int(K) or K < 2:
            raise ValueError(f"GMVAEConfig.K must be an int >= 2 (the number of clusters); got {K!r}")
    for f in (f for f in SIZES if f in values):
        if not _is_int(values[f]) or values[f] < 1:
            raise ValueError(f"{name(f)} must be a positive {'whole number' if cli else 'int'}; got {values[f]!r}")
    for f in (f for f in WEIGHTS if f in values):
        if not _finite(values[f]) or values[f] < 0:
            raise ValueError(f"{name(f)} must be a {'' if cli else 'finite '}number >= 0; got {values[f]!r}")
    if "fourier_features" in values and (not _is_int(values["fourier_features"]) or values["fourier_features"] < 0):
        raise ValueError(f"{name('fourier_features')} must be a whole number >= 0 (0: off); got "
                         f"{values['fourier_features']!r}")
    if "fourier_scale" in values and (not _finite(values["fourier_scale"]) or values["fourier_scale"] <= 0):
        raise ValueError(f"{name('fourier_scale')} must be a positive number; got {values['fourier_scale']!r}")
    if values.get("fourier_features") and values.get("arch", "fc") != "fc":
        raise ValueError(f"{name('fourier_features')} is for the fully connected encoder (rows of a few columns); "
                         f"the conv architecture reads images: leave it out")
    if "balance_floor" in values:
        f = values["balance_floor"]
        if not _finite(f) or not 0 <= f <= 1:
            raise ValueError(f"{name('balance_floor')} must be a number from 0 to 1 (a share of 1/K); got {f!r}")
    for f, pair in NEEDS_CV.items():
        if values.get(f) and values.get("variant", "cv") != "cv":
            raise ValueError(f"{name(f)} needs the cv variant (it compares {pair}; the mi variant has "
                             f"no q(z|y)): leave it out or add {'--variant cv' if cli else 'variant=cv'}; got "
                             f"variant {values['variant']!r}")


@dataclass
class GMVAEConfig:
    """Everything that determines a GMVAE's architecture and objective (JSON-able via ``to_dict``).

    input_shape  shape of one observation y: (D,) for vectors; (1, 28, 28) for the conv architecture
    arch         "fc" (fully connected) or "conv" (convolutional, 1x28x28 inputs only)
    likelihood   "bernoulli" (y in [0, 1], decoder gives logits) or "gaussian" (decoder mean, log-variance)
    K            number of mixture components (clusters), >= 2
    Dx, Dw       sizes of the latents x and w
    hidden       width of the hidden layers (the conv body's last channel count)
    variant      "cv" (q(z|y) head + consistency violation) or "mi" (p(z|x,w) + minimum information)
    alpha        weight of the consistency-violation term (cv)
    eta          weight of the z-prior term (cv)
    lam          minimum-information threshold lambda on the z-prior KL (mi)
    balance      weight of the batch balance term KL(mean_b p(z|.) || pi) (both variants; 0 = off)
    balance_floor  0: the balance term is that KL, which asks every cluster for an equal share of the batch;
                 f in (0, 1]: it is the floor sum_k max(0, log(f/K) - log mean_b p(z=k|.)) instead, which
                 only stops a cluster's share from falling below f/K (gmvae_np.elbo.batch_floor)
    invariance   weight of the invariance term -log sum_k q(z=k|y) q(z=k|y moved) (cv; 0 = off), moves up
                 to ``shift`` pixels each way of images of ``image_shape`` (C, H, W) (gmvae_np.augment)
    neighbour_weight  weight of the neighbour term -log sum_k q(z=k|y) q(z=k|y'), y' a neighbour of y in
                 the training data, given to ``loss`` as ``neighbours`` (cv; 0 = off; gmvae_np.neighbours)
    neighbour_code_weight  weight of the code agreement of the same pairs: the symmetric KL between q(x|y)
                 and q(x|y') (cv; 0 = off)
    fourier_features  n: the fc encoder reads y beside n random sinusoids sin(y B), cos(y B) of it, B drawn
                 from N(0, fourier_scale^2) (gmvae_np.layers.FourierFeatures; for rows of a few columns,
                 whose clusters a plain ReLU network is slow to tell apart; 0 = off)
    fourier_scale  the spread of B's entries, in the units of y
    mc           number M of Monte Carlo samples of (x, w) per data point
    dtype        "float32" or "float64" for the parameters and the computation
    """

    input_shape: tuple
    arch: str = "fc"
    likelihood: str = "bernoulli"
    K: int = 10
    Dx: int = 200
    Dw: int = 150
    hidden: int = 1000
    variant: str = "cv"
    alpha: float = 1.0
    eta: float = 1.0
    lam: float = 0.0
    balance: float = 0.0
    balance_floor: float = 0.0
    mc: int = 1
    dtype: str = "float32"
    invariance: float = 0.0
    shift: int = 2
    image_shape: tuple | None = None
    neighbour_weight: float = 0.0
    neighbour_code_weight: float = 0.0
    fourier_features: int = 0
    fourier_scale: float = 3.0

    def __post_init__(self):
        shape = self.input_shape
        if _is_int(shape):
            shape = (shape,)
        if (not isinstance(shape, (tuple, list)) or not shape
                or not all(_is_int(s) and s > 0 for s in shape)):
            raise ValueError(f"GMVAEConfig.input_shape must be a non-empty tuple of positive ints, e.g. (784,) "
                             f"or (1, 28, 28); got {self.input_shape!r}")
        self.input_shape = tuple(shape)
        check_model_fields(dataclasses.asdict(self))
        for name in WEIGHTS + ("balance_floor", "fourier_scale"):
            setattr(self, name, float(getattr(self, name)))
        if self.invariance:
            self._check_invariance()
        if self.arch == "conv" and self.input_shape not in CONV_INPUT_SHAPES:
            raise ValueError(f"GMVAEConfig.arch='conv' needs input_shape (1, 28, 28) (its kernels fit 28x28 "
                             f"images); got {self.input_shape}: use arch='fc' for other shapes")

    def _check_invariance(self) -> None:
        shape = self.image_shape if self.image_shape is not None else self.input_shape
        if len(shape) != 3 or math.prod(shape) != self.input_size:
            raise ValueError(f"GMVAEConfig.invariance moves images: give image_shape (C, H, W) with "
                             f"{self.input_size} values for input_shape {self.input_shape}; got {shape}")
        self.image_shape = tuple(int(n) for n in shape)
        if not _is_int(self.shift) or not 1 <= self.shift < min(shape[1:]):
            raise ValueError(f"GMVAEConfig.shift must be a whole number of pixels from 1 to "
                             f"{min(shape[1:]) - 1}; got {self.shift!r}")

    @property
    def input_size(self) -> int:
        """D, the number of values in one observation."""
        return math.prod(self.input_shape)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["input_shape"] = list(self.input_shape)
        if self.image_shape is not None:
            d["image_shape"] = list(self.image_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GMVAEConfig":
        """Rebuild from ``to_dict()`` output (e.g. read back from JSON); unknown keys are refused."""
        if not isinstance(d, dict):
            raise TypeError(f"GMVAEConfig.from_dict expects a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"GMVAEConfig.from_dict: unknown setting(s) {', '.join(unknown)}; "
                             f"known settings are {', '.join(sorted(known))}")
        if "input_shape" not in d:
            raise ValueError("GMVAEConfig.from_dict: 'input_shape' is required")
        if d.get("image_shape") is not None:
            d = {**d, "image_shape": tuple(d["image_shape"])}
        return cls(**d)
