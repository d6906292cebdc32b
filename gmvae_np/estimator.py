"""GMVAEClustering: the GMVAE as a scikit-learn clustering estimator for your own matrix.

    from gmvae_np import GMVAEClustering
    model = GMVAEClustering(n_clusters=5, random_state=0).fit(X)   # X: (n_samples, n_features)
    labels = model.predict(X)                                       # cluster of each row

It is a scikit-learn estimator (``ClusterMixin, TransformerMixin, BaseEstimator``) that passes
``sklearn.utils.estimator_checks.check_estimator``: it goes into a Pipeline and GridSearchCV, ``clone``,
``pickle`` and ``joblib.dump`` work, input is checked by scikit-learn's ``validate_data`` and use before
``fit`` raises scikit-learn's NotFittedError. What fitting learns ends with an underscore:

    model_            the trained gmvae_np.model.GMVAE (of the best restart)
    config_           its GMVAEConfig
    n_features_in_    number of columns of X (and feature_names_in_ for a DataFrame with string names)
    mean_, scale_     the per-column standardisation (zeros and ones when standardize=False)
    labels_           the cluster of each training row
    history_          one record per epoch: {"epoch", "step", "train": {objective, neg_elbo, terms...}}
    n_iter_           epochs trained
    n_init_scores_    score(X) of every restart at the end of its screening (the mean ELBO; the highest wins)
    n_init_seeds_     the seed each restart trained with
    best_init_        the index of the winning restart

``n_init`` restarts are gmvae_np.restarts.best_of_n, the function behind the command line's ``--restarts``:
each restart trains for a fifth of the epochs (at least presets.AUTO_EPOCHS[0], the whole training when that
is shorter), the one with the highest mean ELBO on X (in eval mode, as ``score``) is kept, and only it trains
on to ``epochs``. ``n_jobs`` screens the restarts in that many worker processes, each with one BLAS thread,
through joblib: inside ``joblib.parallel_config(backend="dask")`` they run on a Dask cluster. The seeds:
an int ``random_state`` r gives restart i the seed ``restart_seed(r, i)`` = r + 1000 (i - 1), the
command line's (the first restart trains with the seed ``--seed r`` sets, whatever n_init); None or a
``numpy.random.RandomState`` (through scikit-learn's ``check_random_state``), or a
``numpy.random.Generator``, draws r.

``predict_proba`` gives the cluster probabilities (q(z|y) for variant "cv", p(z|x, w) at the posterior
means for "mi"), ``transform`` the latent means E[x|y] (n_samples, Dx) for plotting and downstream use,
``score`` the mean ELBO per sample (higher is better; in the units of the standardised data),
``sample(n)`` n draws from the generative model in the original units, and ``save(path)`` /
``GMVAEClustering.load(path)`` keep a fitted estimator in one .npz file (pickle works too).

The defaults (gmvae_np.presets.TABLE, with the values that follow from the data's size from
``presets.table_settings``) suit tables of hundreds to tens of thousands of rows and data nobody tuned
them for: a narrow network (hidden 64), batches of 64 rows, ``epochs="auto"`` (about presets.AUTO_STEPS
Adam steps whatever the number of rows), the neighbour graph of the rows with its term, a start from
the graph's own partition, the balance floor, Fourier features for rows of two or three columns, and
the columns scaled as ``standardize="auto"`` says. docs/gallery.md measures them on the clustering
benchmark suite and on scikit-learn's data sets, beside KMeans, a Gaussian mixture, spectral clustering
and Genie, and says why each is there.

``dtype="float32"`` (the default) computes as the rest of the project does; in float32, a row's latent
means may change in their 7th digit when the rows around it change (the matrix products add in another
order), which scikit-learn's order-invariance checks count as a difference; ``dtype="float64"`` passes them.

``n_clusters=1`` puts every row in one cluster, as scikit-learn's clusterers do; the model underneath
still has two mixture components (a GMVAE needs K >= 2), whose probabilities are added together.

Training is gmvae_np.train.Trainer without a run directory; see there for the loop. Every mini-batch has
``batch_size`` rows (the last partial batch of an epoch is dropped); a batch_size larger than the data
is clipped to the number of rows. ``score`` and ``sample`` draw their noise from a generator seeded with
the winning restart's seed, so they return the same values every time they are called on the same model.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

import autograd_lite as ag

from .data import Dataset, scaling
from .elbo import LIKELIHOODS
from .presets import TABLE, Settings, table_settings
from .restarts import best_of_n
from .train import evaluate, evaluation

__all__ = ["GMVAEClustering", "NotFittedError"]

_NOT_FITTED = "this %(name)s is not fitted yet; call fit(X) first"


def _check_magnitude(X: np.ndarray, standardize, dtype: str, fitted=None) -> None:
    """Refuse values the model cannot hold: a column whose mean or spread overflows (fitting with
    ``standardize``), or values beyond the model's floating-point type after the scaling in use."""
    with np.errstate(over="ignore", invalid="ignore"):
        if standardize:
            if not (np.all(np.isfinite(X.mean(axis=0))) and np.all(np.isfinite(X.std(axis=0)))):
                raise ValueError(f"X holds values too large to standardise (up to {np.abs(X).max():.3g}); "
                                 f"rescale X, e.g. divide it by its largest value")
            return
        scaled = X if fitted is None else (X - fitted[0]) / fitted[1]
        limit = float(np.finfo(np.float32 if dtype == "float32" else np.float64).max)
        if not np.all(np.abs(scaled) <= limit):
            raise ValueError(f"X holds values (up to {np.abs(X).max():.3g}) beyond what the model's {dtype} "
                             f"can hold{'' if fitted is None else ' after the fitted scaling'}; rescale X")


def _as_array(X):
    """X as a NumPy array for the shape and dtype checks made before scikit-learn's, or None (sparse,
    ragged or otherwise unreadable input is left to scikit-learn's validation and its messages)."""
    if hasattr(X, "tocsr"):  # a SciPy sparse matrix or array
        return None
    try:
        return np.asarray(X)
    except Exception:
        return None


EVAL_BATCH = 500
"""Rows per evaluation batch, as training's evaluations of a fully connected model (Settings.eval_batch)."""


INITS = ("graph", "mixture", "random")
"""What ``init`` may be: the start from the neighbour graph's partition, from a Gaussian mixture of the
pretrained codes (gmvae_np.pretrain), or none (the networks as initialised)."""

def _base_seed(random_state) -> int:
    """The seed of the first restart: r for an int r; drawn from a RandomState, a Generator, or None."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be None, a whole number >= 0, a numpy RandomState or "
                             f"Generator; got {random_state!r}")
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    if random_state is None or isinstance(random_state, np.random.RandomState):
        return int(check_random_state(random_state).randint(0, 2**31 - 1))
    raise ValueError(f"random_state must be None, a whole number >= 0, a numpy RandomState or Generator; "
                     f"got {random_state!r}")


def _mean_elbo(model, Xs: np.ndarray, dtype: str, seed: int) -> float:
    """The mean ELBO per row of Xs (standardised), from train.evaluate in eval mode, with the noise of a
    generator seeded by ``seed``: the value training's seeded evaluation gives (Trainer(seeded_eval=True))."""
    b = model.backend
    batches = (ag.tensor(b.asarray(Xs[lo:lo + EVAL_BATCH], dtype=dtype), backend=b)
               for lo in range(0, Xs.shape[0], EVAL_BATCH))
    with evaluation(model, model.rng):
        model.rng.set_state(ag.Generator(b, seed).get_state())
        ev, _ = evaluate(model, batches)
    return -ev["neg_elbo"]


class GMVAEClustering(ClusterMixin, TransformerMixin, BaseEstimator):
    """Deep unsupervised clustering of the rows of a matrix with a Gaussian-mixture VAE.

    n_clusters  K, the number of mixture components (>= 1)
    variant     "cv" (consistency violation) or "mi" (minimum-information constraint)
    epochs      passes over the data; "auto" trains for about presets.AUTO_STEPS Adam steps
    batch_size, lr             Adam training: rows per step, learning rate
    hidden, Dx, Dw             network width and the sizes of the latents x and w
    alpha, eta, lam            weights of the consistency violation and z prior (read by cv only),
                               free-bits threshold (read by mi only)
    balance     weight of the balance term, which keeps every cluster in use (0: off)
    balance_floor  0: the balance term is KL(mean of q(z|y) over a batch || uniform), which asks for equal
                cluster sizes; f in (0, 1]: it is the floor sum_k max(0, log(f/K) - log mean_b q(z=k|y)),
                zero while each cluster holds at least f/K of the batch (gmvae_np.elbo.batch_floor)
    n_neighbors k of the neighbour graph of the (scaled) rows, whose neighbour term asks each row and one
                of its k nearest rows for one cluster (gmvae_np.neighbours; cv only; 0: off); more than
                the other rows is clipped to their number
    neighbor_weight  the neighbour term's weight
    mutual_neighbors keep only mutual neighbours (j among i's k nearest and i among j's)
    fourier_features  the encoder reads each row beside this many random sinusoids of it
                (gmvae_np.layers.FourierFeatures); "auto": 32 for rows of at most 3 columns, else 0
    fourier_scale  the spread of the sinusoids' frequencies, in the units of the scaled rows
    init        the start: "graph" (q(z|y) learns the neighbour graph's spectral partition while the
                autoencoder pretrains, and the prior's components start at its parts' codes; without a
                graph, or with variant "mi", the default becomes "mixture"), "mixture" (a Gaussian mixture
                of the pretrained codes starts the prior, as VaDE) or "random" (no pretraining)
    init_epochs  pretraining epochs of the start; "auto": half the epochs
    mc          Monte Carlo samples per row
    likelihood  "gaussian" (real-valued columns) or "bernoulli" (values in [0, 1])
    standardize True: z-score each column; False: the columns as they are; "auto": z-score them when their
                ranges differ by more than 4 times (10th to 90th percentile), else centre them and
                divide all by one scale (gmvae_np.data.scaling; Gaussian likelihood only, "auto" is False
                for Bernoulli). The same scaling is applied to the X of predict, transform, score and
                undone for sample
    n_init      number of restarts from different seeds, screened; the one with the highest mean ELBO on
                X is kept and trained on (module docstring)
    n_jobs      worker processes for the restarts (None: in this process, unless a joblib.parallel_config
                says otherwise; -1: one per core)
    random_state  None, an int seed, or a numpy RandomState/Generator (see the module docstring)
    dtype       "float32" or "float64": the parameters' and the computation's floating-point type
    backend     "numpy", "cupy" (GPU) or "strict"
    verbose     print one summary line per epoch
    """

    def __init__(self, n_clusters: int = TABLE["K"], *, variant: str = "cv", epochs="auto",
                 batch_size: int = TABLE["batch_size"], lr: float = TABLE["lr"], hidden: int = TABLE["hidden"],
                 Dx: int = TABLE["Dx"], Dw: int = TABLE["Dw"], alpha: float = TABLE["alpha"],
                 eta: float = TABLE["eta"], lam: float = 0.5, balance: float = TABLE["balance"],
                 balance_floor: float = TABLE["balance_floor"], n_neighbors: int = TABLE["neighbours"],
                 neighbor_weight: float = TABLE["neighbour_weight"], mutual_neighbors: bool = False,
                 fourier_features="auto", fourier_scale: float = TABLE["fourier_scale"], mc: int = 1,
                 likelihood: str = "gaussian", standardize="auto", init: str = TABLE["start"],
                 init_epochs="auto", n_init: int = 1, n_jobs=None, random_state=None, dtype: str = "float32",
                 backend: str = "numpy", verbose: bool = False):
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
        self.balance = balance
        self.balance_floor = balance_floor
        self.fourier_features = fourier_features
        self.fourier_scale = fourier_scale
        self.n_neighbors = n_neighbors
        self.neighbor_weight = neighbor_weight
        self.mutual_neighbors = mutual_neighbors
        self.mc = mc
        self.likelihood = likelihood
        self.standardize = standardize
        self.init = init
        self.init_epochs = init_epochs
        self.n_init = n_init
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.dtype = dtype
        self.backend = backend
        self.verbose = verbose

    def set_params(self, **params) -> "GMVAEClustering":
        """Change constructor arguments (checked at the next fit); returns self."""
        valid = self._get_param_names()
        for name in params:
            if "__" not in name and name not in valid:
                raise ValueError(f"GMVAEClustering has no parameter {name!r}; valid parameters: "
                                 f"{', '.join(valid)}")
        return super().set_params(**params)

    # -- validation ------------------------------------------------------------------------------------
    def _check_X(self, X, fitting: bool) -> np.ndarray:
        """X validated by scikit-learn (and our one-line messages where they say more), as float64."""
        a = _as_array(X)
        if a is not None:
            if a.dtype.kind in "USV":
                raise ValueError(f"X has dtype {a.dtype}; it must hold numbers (convert or encode the columns)")
            if a.dtype.kind == "c":
                raise ValueError(f"Complex data not supported: X has dtype {a.dtype}; split the real and "
                                 f"imaginary parts into columns of their own")   # scikit-learn's words first
            if a.ndim != 2:
                raise ValueError(f"X has shape {a.shape}; expected a 2-D array (n_samples, n_features). "
                                 f"Reshape your data, e.g. X.reshape(-1, 1) for a single feature")
            if fitting and a.shape[0] < 2 and a.shape[1] >= 1:
                raise ValueError(f"X has {a.shape[0]} sample(s); at least 2 are needed to fit")
        X = validate_data(self, X, reset=fitting, dtype=np.float64, ensure_all_finite=False,
                          ensure_min_samples=2 if fitting else 1)
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or infinite values; remove or impute them first")
        if fitting and isinstance(self.n_clusters, numbers.Integral) and self.n_clusters > X.shape[0]:
            raise ValueError(f"n_clusters={self.n_clusters} is more than the {X.shape[0]} samples of X; give "
                             f"n_clusters={X.shape[0]} or fewer, or more samples")
        _check_magnitude(X, self.standardize if fitting else None, self.dtype if fitting else self.config_.dtype,
                         None if fitting else (self.mean_, self.scale_))
        if self._likelihood() == "bernoulli" and (X.min() < 0.0 or X.max() > 1.0):
            raise ValueError("likelihood='bernoulli' needs values in [0, 1]; rescale X or use "
                             "likelihood='gaussian'")
        return X

    def _likelihood(self) -> str:
        """The likelihood in use: the fitted model's, or the parameter before fitting."""
        return self.config_.likelihood if hasattr(self, "config_") else self.likelihood

    def _check_params(self) -> None:
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be 'gaussian' or 'bernoulli'; got {self.likelihood!r}")
        if self.likelihood == "bernoulli" and self.standardize is True:
            raise ValueError("standardize=True would move values out of [0, 1]; pass standardize=False with "
                             "likelihood='bernoulli'")
        if not (isinstance(self.standardize, (bool, np.bool_)) or (isinstance(self.standardize, str)
                                                                   and self.standardize == "auto")):
            raise ValueError(f"standardize must be True, False or 'auto'; got {self.standardize!r}")
        if not isinstance(self.mutual_neighbors, (bool, np.bool_)):
            raise ValueError(f"mutual_neighbors must be True or False; got {self.mutual_neighbors!r}")
        w = self.neighbor_weight
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w) or w < 0:
            raise ValueError(f"neighbor_weight must be a number >= 0; got {w!r}")
        if isinstance(self.n_init, bool) or not isinstance(self.n_init, numbers.Integral) or self.n_init < 1:
            raise ValueError(f"n_init must be a positive whole number; got {self.n_init!r}")
        if isinstance(self.n_clusters, numbers.Integral) and not isinstance(self.n_clusters, bool) \
                and self.n_clusters < 1:
            raise ValueError(f"n_clusters must be a positive whole number; got {self.n_clusters!r}")
        from .parallel import resolve_jobs

        resolve_jobs(self.n_jobs, 1)

    def _settings(self, n_rows: int, n_features: int, seed: int, n_init: int = 1) -> Settings:
        K = self.n_clusters
        if isinstance(K, numbers.Integral) and not isinstance(K, bool):
            K = max(2, int(K))  # one cluster: two components reported together (module docstring)
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(map(repr, INITS))}; got {self.init!r}")
        if self.init == "random":
            start = dict(start="mixture", pretrain_epochs=0)       # no pretraining: no start at all
        elif self.init == TABLE["start"]:
            start = dict(pretrain_epochs=self.init_epochs)         # the default falls away without a graph
        else:
            start = dict(start=self.init, pretrain_epochs=self.init_epochs)
        graph = dict(neighbours=self.n_neighbors, neighbour_weight=self.neighbor_weight,
                     mutual_neighbours=self.mutual_neighbors)
        if self.variant == "mi" and self.n_neighbors == TABLE["neighbours"] \
                and self.neighbor_weight == TABLE["neighbour_weight"]:
            graph["neighbours"] = 0   # the graph's defaults fall away with the q(z|y) it needs; given ones are refused
        table = table_settings(
            n_rows, n_features, K=K, Dx=self.Dx, Dw=self.Dw, hidden=self.hidden, variant=self.variant,
            alpha=self.alpha, eta=self.eta, lam=self.lam, balance=self.balance, balance_floor=self.balance_floor,
            **graph, fourier_features=self.fourier_features,
            fourier_scale=self.fourier_scale, mc=self.mc, epochs=self.epochs, batch_size=self.batch_size,
            lr=self.lr, **start)
        epochs = table["epochs"]
        try:
            return Settings(
                experiment="estimator", dataset="array", arch="fc", likelihood=self.likelihood, seed=seed,
                dtype=self.dtype, backend=self.backend, restarts=n_init, select_by="eval_elbo", log_every=0,
                plots=False, eval_every=epochs if isinstance(epochs, int) and epochs > 0 else 1,
                **table).validate()
        except ValueError as e:
            # the settings speak in command-line flags; name the estimator's parameters instead
            msg = str(e)
            for flag_name, param in (("--K", "n_clusters"), ("--batch-size", "batch_size"),
                                     ("--neighbour-weight", "neighbor_weight"), ("--neighbours", "n_neighbors"),
                                     ("--pretrain-epochs", "init_epochs"), ("--start", "init"),
                                     ("--mutual-neighbours", "mutual_neighbors")):
                msg = msg.replace(flag_name, param)
            raise ValueError(msg.replace("--", "")) from None

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean_) / self.scale_).astype(np.float32 if self.config_.dtype == "float32" else np.float64)

    # -- fitting -----------------------------------------------------------------------------------------
    def fit(self, X, y=None) -> "GMVAEClustering":
        """Train on the rows of X (y is ignored: clustering is unsupervised). Returns self."""
        self._check_params()
        X = self._check_X(X, fitting=True)
        settings = self._settings(X.shape[0], X.shape[1], _base_seed(self.random_state), self.n_init)
        mean, scale = scaling(X, False if self.likelihood == "bernoulli" else self.standardize)
        data = Dataset(name="X", x_train=(X - mean) / scale, likelihood=self.likelihood)
        best = best_of_n(settings, None, n_jobs=self.n_jobs, dataset=data, verbose=bool(self.verbose),
                         seeded_eval=True)
        trainer = best.trainer
        self.model_, self.optimizer_, self.config_ = trainer.model, trainer.optimizer, trainer.config
        self.mean_, self.scale_ = mean, scale
        self.history_ = [{k: r[k] for k in ("epoch", "step", "train")} for r in trainer.history]
        self.n_iter_ = len(self.history_)
        self.n_init_scores_ = np.array([-best.screened[i]["eval_elbo"] for i in sorted(best.screened)],
                                       dtype=np.float64)
        self.n_init_seeds_ = np.array(best.seeds, dtype=np.int64)
        self.best_init_ = best.chosen - 1
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

    def _input(self, X) -> np.ndarray:
        check_is_fitted(self, msg=_NOT_FITTED)
        return self._scaled(self._check_X(X, fitting=False))

    def predict_proba(self, X) -> np.ndarray:
        """Cluster probabilities, (n_samples, n_clusters); rows sum to one."""
        Xs = self._input(X)
        if self.n_clusters == 1 and self.config_.K == 2:
            return np.ones((Xs.shape[0], 1))
        model, b = self.model_, self.model_.backend
        model.eval()
        parts = [model.predict_proba(y).data for y in self._batches(Xs)]
        return b.to_numpy(b.xp.concat(parts, axis=0)).astype(np.float64)

    def predict(self, X) -> np.ndarray:
        """The most probable cluster of each row, int64 (n_samples,)."""
        return np.argmax(self.predict_proba(X), axis=1).astype(np.int64)

    def transform(self, X) -> np.ndarray:
        """The latent means E[x|y] of q(x|y), float64 (n_samples, Dx): the space the clusters live in."""
        Xs = self._input(X)
        model, b = self.model_, self.model_.backend
        model.eval()
        parts = [model.encode(y)["x_mean"].data for y in self._batches(Xs)]
        return b.to_numpy(b.xp.concat(parts, axis=0)).astype(np.float64)

    @property
    def _seed(self) -> int:
        return int(self.n_init_seeds_[self.best_init_])

    def score(self, X, y=None) -> float:
        """The mean evidence lower bound per sample (higher is better), in eval mode."""
        Xs = self._input(X)
        value = _mean_elbo(self.model_, Xs, self.config_.dtype, self._seed)
        if not math.isfinite(value):
            raise ValueError("the ELBO of X is not finite; the model or X is out of range")
        return value

    def sample(self, n: int = 1) -> np.ndarray:
        """n draws from the generative model (decoder means), in the units of the training X."""
        check_is_fitted(self, msg=_NOT_FITTED)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive whole number; got {n!r}")
        model = self.model_
        model.eval()
        draws = model.sample(int(n), rng=ag.Generator(model.backend, self._seed)).numpy()
        return draws.astype(np.float64) * self.scale_ + self.mean_

    # -- persistence -------------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the fitted estimator (parameters, Adam state, scaling, history) to one .npz file.

        The write is atomic: a write that fails (no space left, permission denied, a read-only file
        system) raises CheckpointError, one line naming the file and the fault, and leaves a file
        already at ``path`` as it was.
        """
        from .checkpoint import CheckpointError

        try:
            self._save(path)
        except OSError as e:
            raise CheckpointError(f"cannot write {path}: {e.strerror or e}; a file already there is left as "
                                  f"it was") from None

    def _save(self, path) -> None:
        from .checkpoint import save_checkpoint

        check_is_fitted(self, msg=_NOT_FITTED)
        params = self.get_params()
        if not isinstance(params["random_state"], (int, type(None))):
            params["random_state"] = None  # a generator object is not kept; the seeds below are
        save_checkpoint(path, model=self.model_, optimizer=self.optimizer_,
                        rng_state=self.model_.rng.get_state(), config=self.config_.to_dict(),
                        extra={"estimator": params, "mean": [float(v) for v in self.mean_],
                               "scale": [float(v) for v in self.scale_], "history": self.history_,
                               "n_init_scores": [float(v) for v in self.n_init_scores_],
                               "n_init_seeds": [int(v) for v in self.n_init_seeds_],
                               "best_init": int(self.best_init_)})

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
        if "seed" in params:  # written before random_state replaced seed
            params["random_state"] = params.pop("seed")
        params = {k: v for k, v in params.items() if k in cls._get_param_names()}
        if backend is not None:
            params["backend"] = backend if isinstance(backend, str) else backend.name
        est = cls(**params)
        config = GMVAEConfig.from_dict(ckpt.config)
        seeds = [int(s) for s in extra.get("n_init_seeds", [params.get("random_state") or 0])]
        best = int(extra.get("best_init", 0))
        model = GMVAE(config, backend=est.backend, seed=seeds[best])
        optimizer = Adam(model.parameters(), lr=est.lr)
        restore(ckpt, model, optimizer)
        est.model_, est.optimizer_, est.config_ = model, optimizer, config
        est.mean_ = np.asarray(extra["mean"], dtype=np.float64)
        est.scale_ = np.asarray(extra["scale"], dtype=np.float64)
        est.n_features_in_ = int(est.mean_.size)
        est.history_ = list(extra.get("history", []))
        est.n_iter_ = len(est.history_)
        est.n_init_seeds_ = np.asarray(seeds, dtype=np.int64)
        est.n_init_scores_ = np.asarray(extra.get("n_init_scores", [np.nan] * len(seeds)), dtype=np.float64)
        est.best_init_ = best
        return est
