"""A start from a Gaussian mixture on pretrained codes (``--pretrain-epochs P``), in the manner of VaDE.

VaDE (Jiang et al., 2017) starts its mixture prior from a Gaussian mixture fitted to the codes of a
pretrained autoencoder. For the GMVAE that takes three steps, none of which reads a label:

1. Pretrain the recognition body, its x head and the decoder as a deterministic autoencoder, P epochs
   of Adam at the run's learning rate on (:func:`autoencoder_loss`)

       L_AE = mean_b reconstruction( y_b, decoder(m(y_b)) ),   m(y) = E_q[x|y], the mean code,

   the ELBO's reconstruction term with the sample x replaced by the mean code.
2. Fit a K-component Gaussian mixture with diagonal covariances to the training codes m(y)
   (:func:`fit_code_mixture`; scikit-learn's EM, seeded by the run's seed):

       p(m) = sum_k pi_k N(m | c_k, diag s2_k).

3. Make every component of the GMVAE's prior p(x|w,z=k) = N(mu_k(w), sigma2_k(w)) start as the mixture's
   k-th component, whatever w (:func:`init_prior_from_mixture`): the prior heads' weights are set to 0
   and their biases to c_k and to the raw value whose soft clamp is log s2_k. The heads learn their
   dependence on w from there. The mixture's weights pi_k are not used: the GMVAE's pi is uniform.

The q(z|y) head of the cv variant is left as it is: the conditional prior's gradient moves q(z|y)
towards the components whose KL is smallest, that is towards the mixture's partition, in the first
steps. docs/gmvae.md (section 10) has the formulas, docs/studies.md what the start did on MNIST.
"""
from __future__ import annotations

import math
import time

import numpy as np

import autograd_lite as ag

from . import elbo
from .batches import epoch_batches
from .model import LOGVAR_LIMIT
from .optim import Adam

__all__ = ["autoencoder_loss", "autoencoder_parameters", "assignment_loss", "pretrain_autoencoder", "codes",
           "fit_code_mixture", "partition_moments", "init_prior_from_mixture", "pretrain_and_initialise",
           "report_line"]


def autoencoder_loss(model, y):
    """mean_b reconstruction(y_b, decoder(E_q[x|y_b])): the autoencoder's loss, a scalar Tensor with graph."""
    c = model.config
    y = model._as_input(y)
    B = y.shape[0]
    x_mean = model._encode(y)["x_mean"]
    decoded = {k: ag.reshape(v, (1, B, c.input_size)) for k, v in model._decode(x_mean).items()}
    return ag.mean(elbo.reconstruction(ag.reshape(y, (B, c.input_size)), decoded, c.likelihood))


def autoencoder_parameters(model, assignments: bool = False) -> list:
    """The parameters the autoencoder's loss reaches: the recognition body, the x-mean head, the decoder
    (and the q(z|y) head, which :func:`assignment_loss` trains, when ``assignments``)."""
    params = model.encoder.parameters() + model.x_mean.parameters() + model.decoder.parameters()
    return params + model.z_logits.parameters() if assignments else params


def assignment_loss(model, y, targets):
    """mean_b -log q(z = t_b | y_b): the cross-entropy of q(z|y) against a given partition t, a scalar Tensor.

    ``targets`` is a one-hot (B, K) array on the model's backend. With the graph start, q(z|y) learns the
    neighbour graph's own partition while the autoencoder pretrains (module docstring)."""
    log_q = ag.log_softmax(model._encode(model._as_input(y))["z_logits"], axis=-1)
    return -ag.mean(ag.sum(log_q * ag.tensor(targets, backend=model.backend), axis=-1))


def pretrain_autoencoder(model, x_train, *, epochs: int, batch_size: int, lr: float, rng, targets=None) -> float:
    """``epochs`` passes of Adam(lr) over x_train (a backend array) in batches drawn by ``rng.permutation``;
    with ``targets`` (one-hot (N, K) on the backend) the loss adds :func:`assignment_loss` of each batch.

    Returns the mean autoencoder loss of the last epoch. The model is left in train mode.
    """
    b = model.backend
    xp = b.xp
    optimizer = Adam(autoencoder_parameters(model, assignments=targets is not None), lr=lr)
    n = int(x_train.shape[0])
    model.train()
    total = 0.0
    for _ in range(epochs):
        perm = rng.permutation(n)
        losses = []
        for _, idx, y in epoch_batches(x_train, perm, batch_size, b):   # the training loop's batches
            loss = autoencoder_loss(model, y)
            if targets is not None:
                loss = loss + assignment_loss(model, y, xp.take(targets, idx, axis=0))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.detach().data)
        total = float(b.to_numpy(xp.mean(xp.stack(losses))))
        if not math.isfinite(total):
            raise FloatingPointError(f"autoencoder pretraining diverged: its loss became {total}")
    for p in model.parameters():
        p.grad = None
    return total


def _encoded(model, x, key: str, batch_size: int = 500) -> np.ndarray:
    """One output of the recognition network (``key`` of model.encode) for every row of x (a backend array),
    in eval mode, as a float64 numpy array (N, Dx); the model's mode is put back after."""
    was_training = model.training
    model.eval()
    try:
        n = int(x.shape[0])
        parts = [model.backend.to_numpy(model.encode(x[i:min(i + batch_size, n), ...])[key].data)
                 for i in range(0, n, batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(parts).astype(np.float64)


def codes(model, x, batch_size: int = 500) -> np.ndarray:
    """The mean codes E_q[x|y] of the rows of x (a backend array), in eval mode, as a numpy (N, Dx) array."""
    return _encoded(model, x, "x_mean", batch_size)


def code_noise(model, x, batch_size: int = 500) -> np.ndarray:
    """The mean variance exp(log sigma2) of q(x|y) over the rows of x, per code dimension (Dx,), in eval mode:
    the spread a sample x has around its mean code, which a prior component must cover as well as the
    spread of the mean codes themselves (else the conditional prior's KL starts in the hundreds)."""
    return np.exp(_encoded(model, x, "x_logvar", batch_size)).mean(axis=0)


def fit_code_mixture(z: np.ndarray, K: int, seed: int):
    """A K-component diagonal Gaussian mixture fitted by EM to the codes z (N, Dx): a fitted scikit-learn
    ``GaussianMixture`` (its ``means_`` and ``covariances_`` are the c_k and s2_k above)."""
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(n_components=K, covariance_type="diag", random_state=seed, max_iter=300).fit(z)


def init_prior_from_mixture(model, means, variances) -> None:
    """Set p(x|w,z=k) = N(c_k, diag s2_k) for every w: prior heads' weights 0, biases c_k and the raw
    log-variance r with LOGVAR_LIMIT tanh(r / LOGVAR_LIMIT) = log s2_k (log s2_k kept inside the limit)."""
    c, b = model.config, model.backend
    means, variances = np.asarray(means, np.float64), np.asarray(variances, np.float64)
    if means.shape != (c.K, c.Dx) or variances.shape != (c.K, c.Dx) or not np.all(variances > 0):
        raise ValueError(f"init_prior_from_mixture needs means and positive variances of shape (K, Dx) = "
                         f"({c.K}, {c.Dx}); got {means.shape} and {variances.shape}")
    bound = LOGVAR_LIMIT * (1 - 1e-6)
    raw_logvar = LOGVAR_LIMIT * np.arctanh(np.clip(np.log(variances), -bound, bound) / LOGVAR_LIMIT)
    dtype = b.dtype(c.dtype)
    for head, bias in ((model.prior_mean, means), (model.prior_logvar, raw_logvar)):
        head.weight.data = b.xp.zeros(head.weight.shape, dtype=dtype, device=b.device)
        head.bias.data = b.asarray(bias.reshape(-1), dtype=c.dtype)


def partition_moments(z: np.ndarray, labels: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and variance (K, Dx) of the codes z (N, Dx) in each of the K parts of a partition: the
    components the graph start gives the prior. An empty part takes the mean and variance of all codes;
    every variance is at least 1e-3 of the codes' overall variance (a part of one code has none)."""
    overall_mean, overall_var = z.mean(axis=0), z.var(axis=0)
    floor = np.maximum(1e-3 * overall_var, 1e-6)
    means, variances = np.empty((K, z.shape[1])), np.empty((K, z.shape[1]))
    for k in range(K):
        part = z[labels == k]
        means[k] = part.mean(axis=0) if part.shape[0] else overall_mean
        variances[k] = np.maximum(part.var(axis=0) if part.shape[0] > 1 else overall_var, floor)
    return means, variances


def pretrain_and_initialise(model, x_train, settings, rng, *, x_eval=None, y_eval=None, graph=None,
                            image_shape=None) -> dict:
    """Steps 1 to 3 of the module docstring with the run's settings; returns a JSON-able summary.

    ``settings.start`` says where the prior starts: "mixture" (the steps above) or "graph": the neighbour
    graph's spectral partition (gmvae_np.neighbours.spectral_partition of ``graph``, no labels read) is
    learnt by q(z|y) while the autoencoder pretrains (:func:`assignment_loss`), and each prior component
    starts at the mean and variance of its part's codes (:func:`partition_moments`); ``image_shape`` is
    the rows' image shape, for a graph in the deskew space.
    With held-out data and labels (x_eval, y_eval), the summary also scores the start's own partition
    of the held-out codes (for the report only: nothing in the start reads them).
    """
    started = time.perf_counter()
    K, b = model.config.K, model.backend
    targets = partition = None
    if settings.start == "graph":
        from .neighbours import embed, spectral_partition

        if graph is None:
            raise ValueError("pretrain_and_initialise: the graph start needs the neighbour graph (graph=...)")
        points = b.to_numpy(embed(b.to_numpy(x_train), graph.space, graph.dims, b,
                                  image_shape=image_shape or model.config.input_shape))
        partition = spectral_partition(graph, K, settings.seed, points=points)
        targets = b.asarray(np.eye(K)[partition], dtype=model.config.dtype)
    loss = pretrain_autoencoder(model, x_train, epochs=settings.pretrain_epochs, batch_size=settings.batch_size,
                                lr=settings.lr, rng=rng, targets=targets)
    train_codes = codes(model, x_train)
    summary = {"epochs": settings.pretrain_epochs, "start": settings.start, "reconstruction": loss}
    if partition is None:
        mixture = fit_code_mixture(train_codes, K, settings.seed)
        init_prior_from_mixture(model, mixture.means_, mixture.covariances_)
        summary.update(converged=bool(mixture.converged_), iterations=int(mixture.n_iter_),
                       log_likelihood=float(mixture.score(train_codes)))
    else:
        means, variances = partition_moments(train_codes, partition, K)
        init_prior_from_mixture(model, means, variances + code_noise(model, x_train)[None, :])
        summary["sizes"] = [int(v) for v in np.bincount(partition, minlength=K)]
    if x_eval is not None and y_eval is not None and partition is None:
        from .metrics import clustering_report

        summary["eval"] = clustering_report(mixture.predict_proba(codes(model, x_eval)), y_eval)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary


def report_line(summary: dict) -> str:
    """The one line a run prints about its start (from :func:`pretrain_and_initialise`'s summary)."""
    scores = summary.get("eval")
    return (f"pretrained the autoencoder for {summary['epochs']} epoch(s) (reconstruction "
            f"{summary['reconstruction']:.4f}, {summary['seconds']:.0f} s); the prior starts from "
            + ("a Gaussian mixture on the codes" if summary.get("start", "mixture") == "mixture" else
               "the neighbour graph's partition (parts of " + ", ".join(map(str, summary["sizes"])) + " rows)")
            + (f" (its partition of the held-out codes: acc {scores['acc_paper']:.3f}/{scores['acc_hungarian']:.3f} "
               f"nmi {scores['nmi']:.3f})" if scores else ""))
