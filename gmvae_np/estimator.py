"""GMVAEClustering: the GMVAE as a scikit-learn-style clustering estimator for your own matrix.

    from gmvae_np import GMVAEClustering
    model = GMVAEClustering(n_clusters=5, epochs=50).fit(X)      # X: (n_samples, n_features)
    labels = model.predict(X)                                     # cluster of each row

It follows scikit-learn's conventions without depending on scikit-learn: ``__init__`` only stores its
arguments (checked in ``fit``), ``get_params``/``set_params`` work (so ``sklearn.base.clone`` and grid
searches do), ``fit`` returns the estimator, and what fitting learns ends with an underscore:

    model_          the trained gmvae_np.model.GMVAE
    config_         its GMVAEConfig
    n_features_in_  number of columns of X
    mean_, scale_   the per-column standardisation (zeros and ones when standardize=False)
    labels_         the cluster of each training row
    history_        one record per epoch: {"epoch", "step", "train": {objective, neg_elbo, terms...}}
    n_iter_         epochs trained

``predict_proba`` gives the cluster probabilities (q(z|y) for variant "cv", p(z|x, w) at the posterior
means for "mi"), ``score`` the mean ELBO per sample (higher is better; in the units of the standardised
data), ``sample(n)`` n draws from the generative model in the original units, and
``save(path)`` / ``GMVAEClustering.load(path)`` keep a fitted estimator in one .npz file.

Training is gmvae_np.train.Trainer without a run directory; see there for the loop. Every mini-batch has
``batch_size`` rows (the last partial batch of an epoch is dropped); a batch_size larger than the data
is clipped to the number of rows. ``score`` and ``sample`` draw their noise from a generator seeded with
``seed``, so they return the same values every time they are called on the same model.
"""
from __future__ import annotations

import inspect
import math

import numpy as np

import autograd_lite as ag

from .data import Dataset
from .presets import PRESETS, Settings

__all__ = ["GMVAEClustering", "NotFittedError"]

_DEFAULTS = PRESETS["custom"]


class NotFittedError(ValueError, AttributeError):
    """The estimator was used before ``fit`` (the same bases as scikit-learn's NotFittedError)."""


class GMVAEClustering:
    """Deep unsupervised clustering of the rows of a matrix with a Gaussian-mixture VAE.

    n_clusters  K, the number of mixture components (>= 2)
    variant     "cv" (consistency violation) or "mi" (minimum-information constraint)
    epochs, batch_size, lr     Adam training: passes over the data, rows per step, learning rate
    hidden, Dx, Dw             network width and the sizes of the latents x and w
    alpha, eta, lam            weights of the consistency violation and z prior (read by cv only),
                               free-bits threshold (read by mi only)
    mc          Monte Carlo samples per row
    likelihood  "gaussian" (real-valued columns) or "bernoulli" (values in [0, 1])
    standardize z-score each column before training (Gaussian likelihood only); the same scaling is
                applied to the X of predict, score and undone for sample
    backend     "numpy", "cupy" (GPU) or "strict"
    seed        seed of initialisation, batch order and noise
    verbose     print one summary line per epoch
    """

    def __init__(self, n_clusters: int = _DEFAULTS["K"], *, variant: str = "cv", epochs: int = 100,
                 batch_size: int = _DEFAULTS["batch_size"], lr: float = _DEFAULTS["lr"],
                 hidden: int = _DEFAULTS["hidden"], Dx: int = _DEFAULTS["Dx"], Dw: int = _DEFAULTS["Dw"],
                 alpha: float = 1.0, eta: float = 1.0, lam: float = 0.5, mc: int = 1,
                 likelihood: str = "gaussian", standardize: bool = True, backend: str = "numpy",
                 seed: int = 0, verbose: bool = False):
        self.n_clusters = n_clusters
        self.variant = variant
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.hidden = hidden
        self.Dx = Dx
        self.Dw = Dw
        self.alpha = alpha
        self.eta = eta
        self.lam = lam
        self.mc = mc
        self.likelihood = likelihood
        self.standardize = standardize
        self.backend = backend
        self.seed = seed
        self.verbose = verbose

    # -- scikit-learn's parameter protocol ----------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list:
        return [name for name, p in inspect.signature(cls.__init__).parameters.items()
                if name != "self" and p.kind != p.VAR_KEYWORD]

    def get_params(self, deep: bool = True) -> dict:
        """The constructor arguments, by name."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> "GMVAEClustering":
        """Change constructor arguments (checked at the next fit); returns self."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"GMVAEClustering has no parameter {name!r}; valid parameters: "
                                 f"{', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {n: p.default for n, p in inspect.signature(type(self).__init__).parameters.items()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults.get(k)]
        return f"GMVAEClustering({', '.join(changed)})"

    # -- validation ------------------------------------------------------------------------------------
    def _check_X(self, X, fitting: bool) -> np.ndarray:
        try:
            X = np.asarray(X)
        except Exception as e:
            raise ValueError(f"X could not be read as an array ({type(e).__name__}: {e}); pass a 2-D "
                             f"numeric array of shape (n_samples, n_features)") from None
        if X.dtype.kind not in "biuf":
            raise ValueError(f"X has dtype {X.dtype}; it must hold numbers (convert or encode the columns)")
        if X.ndim != 2:
            raise ValueError(f"X has shape {X.shape}; expected a 2-D array (n_samples, n_features) "
                             f"(reshape a single feature with X.reshape(-1, 1))")
        if X.shape[0] < (2 if fitting else 1):
            raise ValueError(f"X has {X.shape[0]} row(s); {'at least 2 are' if fitting else 'at least 1 is'} "
                             f"needed")
        if X.shape[1] < 1:
            raise ValueError("X has no columns (features)")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or infinite values; remove or impute them first")
        if not fitting and X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features but the model was fitted on {self.n_features_in_}")
        X = X.astype(np.float64)
        if self._likelihood() == "bernoulli" and (X.min() < 0.0 or X.max() > 1.0):
            raise ValueError("likelihood='bernoulli' needs values in [0, 1]; rescale X or use "
                             "likelihood='gaussian'")
        return X

    def _likelihood(self) -> str:
        """The likelihood in use: the fitted model's, or the parameter before fitting."""
        return self.config_.likelihood if hasattr(self, "config_") else self.likelihood

    def _check_likelihood(self) -> None:
        if self.likelihood not in ("gaussian", "bernoulli"):
            raise ValueError(f"likelihood must be 'gaussian' or 'bernoulli'; got {self.likelihood!r}")
        if self.likelihood == "bernoulli" and self.standardize:
            raise ValueError("standardize=True would move values out of [0, 1]; pass standardize=False with "
                             "likelihood='bernoulli'")

    def _settings(self, n_rows: int) -> Settings:
        batch = self.batch_size
        if isinstance(batch, int) and not isinstance(batch, bool) and batch > n_rows:
            batch = n_rows  # a batch larger than the data is clipped (scikit-learn's MLP does the same)
        try:
            return Settings(
                experiment="estimator", dataset="array", arch="fc", likelihood=self.likelihood,
                K=self.n_clusters, Dx=self.Dx, Dw=self.Dw, hidden=self.hidden, variant=self.variant,
                alpha=self.alpha, eta=self.eta, lam=self.lam, mc=self.mc, epochs=self.epochs,
                batch_size=batch, lr=self.lr, seed=self.seed, backend=self.backend,
                eval_every=self.epochs if isinstance(self.epochs, int) and self.epochs > 0 else 1,
                log_every=0, plots=False).validate()
        except ValueError as e:
            # the settings speak in command-line flags; name the estimator's parameters instead
            msg = str(e).replace("--K", "n_clusters").replace("--batch-size", "batch_size")
            raise ValueError(msg.replace("--", "")) from None

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("this GMVAEClustering is not fitted yet; call fit(X) first")

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean_) / self.scale_).astype(np.float32 if self.config_.dtype == "float32" else np.float64)

    # -- fitting -----------------------------------------------------------------------------------------
    def fit(self, X, y=None) -> "GMVAEClustering":
        """Train on the rows of X (y is ignored: clustering is unsupervised). Returns self."""
        from .train import Trainer

        self._check_likelihood()
        X = self._check_X(X, fitting=True)
        settings = self._settings(X.shape[0])
        if self.standardize:
            mean = X.mean(axis=0)
            std = X.std(axis=0)
            scale = np.where(X.max(axis=0) == X.min(axis=0), 1.0, std)  # constant columns become zeros
        else:
            mean, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        data = Dataset(name="X", x_train=(X - mean) / scale, likelihood=self.likelihood)
        trainer = Trainer(settings, None, dataset=data, verbose=bool(self.verbose))
        trainer.run()
        self.model_ = trainer.model
        self.optimizer_ = trainer.optimizer
        self.config_ = trainer.config
        self.n_features_in_ = int(X.shape[1])
        self.mean_, self.scale_ = mean, scale
        self.history_ = [{k: r[k] for k in ("epoch", "step", "train")} for r in trainer.history]
        self.n_iter_ = len(trainer.history)
        self.labels_ = self.predict(X)
        return self

    def fit_predict(self, X, y=None) -> np.ndarray:
        """Fit, then return the cluster of each training row."""
        return self.fit(X).labels_

    # -- inference ------------------------------------------------------------------------------------------
    def _batches(self, Xs: np.ndarray, size: int = 1000):
        b = self.model_.backend
        for lo in range(0, Xs.shape[0], size):
            yield ag.tensor(b.asarray(Xs[lo:lo + size], dtype=self.config_.dtype), backend=b)

    def predict_proba(self, X) -> np.ndarray:
        """Cluster probabilities, (n_samples, n_clusters); rows sum to one."""
        self._check_fitted()
        Xs = self._scaled(self._check_X(X, fitting=False))
        model, b = self.model_, self.model_.backend
        model.eval()
        parts = [model.predict_proba(y).data for y in self._batches(Xs)]
        return b.to_numpy(b.xp.concat(parts, axis=0)).astype(np.float64)

    def predict(self, X) -> np.ndarray:
        """The most probable cluster of each row, int64 (n_samples,)."""
        return np.argmax(self.predict_proba(X), axis=1).astype(np.int64)

    def _seeded(self, fn):
        """Run fn with the backend's generator seeded by ``seed``, restoring its state afterwards."""
        rng = self.model_.backend.rng
        state = rng.get_state()
        rng.seed(self.seed)
        try:
            return fn()
        finally:
            rng.set_state(state)

    def score(self, X, y=None) -> float:
        """The mean evidence lower bound per sample (higher is better), in eval mode."""
        self._check_fitted()
        Xs = self._scaled(self._check_X(X, fitting=False))
        model, b = self.model_, self.model_.backend
        xp = b.xp
        model.eval()

        def total():
            s = None
            with ag.no_grad():
                for y_ in self._batches(Xs):
                    v = xp.sum(xp.astype(model.loss(y_).neg_elbo.data, xp.float64))
                    s = v if s is None else s + v
            return float(b.to_numpy(s))

        value = -self._seeded(total) / Xs.shape[0]
        if not math.isfinite(value):
            raise ValueError("the ELBO of X is not finite; the model or X is out of range")
        return value

    def sample(self, n: int = 1) -> np.ndarray:
        """n draws from the generative model (decoder means), in the units of the training X."""
        self._check_fitted()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive whole number; got {n!r}")
        model = self.model_
        model.eval()
        draws = self._seeded(lambda: model.sample(int(n)).numpy())
        return draws.astype(np.float64) * self.scale_ + self.mean_

    # -- persistence -------------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the fitted estimator (parameters, Adam state, scaling, history) to one .npz file."""
        from .checkpoint import save_checkpoint

        self._check_fitted()
        save_checkpoint(path, model=self.model_, optimizer=self.optimizer_,
                        rng_state=self.model_.backend.rng.get_state(), config=self.config_.to_dict(),
                        extra={"estimator": self.get_params(), "mean": [float(v) for v in self.mean_],
                               "scale": [float(v) for v in self.scale_], "history": self.history_})

    @classmethod
    def load(cls, path, backend=None) -> "GMVAEClustering":
        """A fitted estimator from a file written by :meth:`save` (optionally onto another backend)."""
        from .checkpoint import CheckpointError, load_checkpoint, restore
        from .model import GMVAE, GMVAEConfig
        from .optim import Adam

        ckpt = load_checkpoint(path, backend=backend)
        extra = ckpt.extra or {}
        if "estimator" not in extra:
            raise CheckpointError(f"{path} is a checkpoint but not a saved GMVAEClustering (it has no estimator "
                                  f"parameters); load it with gmvae_np.checkpoint.load_checkpoint")
        params = dict(extra["estimator"])
        if backend is not None:
            params["backend"] = backend if isinstance(backend, str) else backend.name
        est = cls(**params)
        config = GMVAEConfig.from_dict(ckpt.config)
        model = GMVAE(config, backend=est.backend, seed=est.seed)
        optimizer = Adam(model.parameters(), lr=est.lr)
        restore(ckpt, model, optimizer)
        est.model_, est.optimizer_, est.config_ = model, optimizer, config
        est.mean_ = np.asarray(extra["mean"], dtype=np.float64)
        est.scale_ = np.asarray(extra["scale"], dtype=np.float64)
        est.n_features_in_ = int(est.mean_.size)
        est.history_ = list(extra.get("history", []))
        est.n_iter_ = len(est.history_)
        return est
