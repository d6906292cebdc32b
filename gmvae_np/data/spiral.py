"""The spiral (pinwheel) toy set of the paper's first experiment, generated rather than read from a file."""
from __future__ import annotations

import numpy as np

from .dataset import DataError, Dataset

__all__ = ["make_spiral"]


def make_spiral(n_per_arm: int = 1000, arms: int = 5, seed: int = 0, noise: float = 0.025,
                r_min: float = 0.22, r_max: float = 1.0, curl: float = 1.0) -> Dataset:
    """The spiral (pinwheel) toy set: `arms` curved arms of `n_per_arm` points each, in the plane.

    For arm k = 0..arms-1 and each of its points, draw t ~ Uniform(0, 1) and eps ~ N(0, I_2):

        r     = r_min + (r_max - r_min) * t                 distance from the origin grows along the arm
        theta = 2 pi k / arms + curl * t                    the arm turns by `curl` radians as it grows
        point = r * (cos theta, sin theta) + noise * eps

    With the defaults (5 arms, r from 0.22 to 1.0, a turn of 1 rad = 57 degrees, noise 0.025) the
    radii span about 0.17 to 1.07 like the original's 5000 x 2 spiral file, and the noise-free arms stay
    at least 0.25 apart (ten noise standard deviations), so the arms are curved but separable.
    The turn decides, more than anything else, how well a GMVAE clusters the arms: the default of 1 rad
    is about the pinwheel data's (Johnson et al., 2016); run directories from before ``curl`` existed
    were trained on 2 rad and are read back with it. What each turn measured is in docs/studies.md
    (summarised in docs/results.md, section 3); ``--curl`` sets it on the command line.
    Rows are shuffled; y_train holds each point's arm. There is no test split: clustering is evaluated
    on the training points.
    """
    if n_per_arm < 1 or arms < 1 or n_per_arm * arms < 2:
        raise DataError(f"spiral: n_per_arm={n_per_arm}, arms={arms} make fewer than 2 points; use larger values")
    if not (0 <= r_min < r_max) or noise < 0:
        raise DataError(f"spiral: need 0 <= r_min < r_max and noise >= 0 (got r_min={r_min}, "
                        f"r_max={r_max}, noise={noise})")
    rng = np.random.default_rng(seed)
    arm = np.repeat(np.arange(arms), n_per_arm)
    t = rng.uniform(0.0, 1.0, size=arm.size)
    r = r_min + (r_max - r_min) * t
    theta = 2.0 * np.pi * arm / arms + curl * t
    x = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    x += noise * rng.standard_normal(x.shape)
    order = rng.permutation(arm.size)
    return Dataset(name="spiral", x_train=x[order], y_train=arm[order], likelihood="gaussian",
                   extra={"source": f"make_spiral(n_per_arm={n_per_arm}, arms={arms}, seed={seed}, "
                                    f"noise={noise}, r_min={r_min}, r_max={r_max}, curl={curl})"})

