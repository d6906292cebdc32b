"""From an experiment's settings to what a run trains on: the data set, shaped for the network, and the
model config.

    from gmvae_np.experiment import load_data, model_config
    data = load_data(settings)              # spiral, MNIST, a feature set or your own matrix
    config = model_config(settings, data)   # input shape and likelihood from the data
"""
from __future__ import annotations

from .data import Dataset, load_dataset, load_matrix, make_spiral
from .presets import Settings, SettingsError

__all__ = ["load_data", "shape_for", "model_config", "SPIRAL_DATA_SEED"]

SPIRAL_DATA_SEED = 0  # the spiral points are one fixed data set (the original's spiral.t7), whatever --seed


def load_data(settings: Settings) -> Dataset:
    """The data set named by the settings, on the host, shaped for the settings' network."""
    if settings.dataset == "spiral":
        data = make_spiral(n_per_arm=settings.n_per_arm, curl=settings.curl, seed=SPIRAL_DATA_SEED)
    elif settings.dataset == "custom":
        standardize = {"yes": True, "no": False}.get(settings.standardize, settings.standardize)
        data = load_matrix(settings.data, labels=settings.labels, standardize=standardize)
    else:
        data = load_dataset(settings.dataset, data_dir=settings.data_dir)
    return shape_for(settings, data)


def shape_for(settings: Settings, data: Dataset) -> Dataset:
    """Flatten images for fc networks; refuse a conv network on vectors."""
    if settings.arch == "conv":
        if data.x_train.ndim != 4:
            raise SettingsError(f"--arch conv needs image data, but {data.name} has rows of "
                                f"{data.n_features} features; use --arch fc")
        return data
    return data.flat() if data.x_train.ndim != 2 else data


def model_config(settings: Settings, data: Dataset):
    """The GMVAEConfig for these settings and this data (input shape and likelihood from the data)."""
    from .model import GMVAEConfig

    likelihood = data.likelihood if settings.likelihood == "auto" else settings.likelihood
    if settings.invariance and data.image_shape is None:
        raise SettingsError(f"--invariance moves images a few pixels, but {data.name} has rows of "
                            f"{data.n_features} features, not images; leave --invariance out")
    try:
        return GMVAEConfig(input_shape=tuple(int(s) for s in data.x_train.shape[1:]), arch=settings.arch,
                           likelihood=likelihood, K=settings.K, Dx=settings.Dx, Dw=settings.Dw,
                           hidden=settings.hidden, variant=settings.variant, alpha=settings.alpha,
                           eta=settings.eta, lam=settings.lam, balance=settings.balance,
                           balance_floor=settings.balance_floor, mc=settings.mc,
                           fourier_features=settings.fourier_features, fourier_scale=settings.fourier_scale,
                           dtype=settings.dtype, invariance=settings.invariance, shift=settings.shift,
                           image_shape=data.image_shape if settings.invariance else None,
                           neighbour_weight=settings.neighbour_weight,
                           neighbour_code_weight=settings.neighbour_code_weight)
    except (ValueError, TypeError) as e:  # the config's own validation: a settings problem
        raise SettingsError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
