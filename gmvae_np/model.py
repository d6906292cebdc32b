"""The Gaussian-mixture VAE: its networks, its loss and what it can infer.

Three networks, as in the original Torch7 code (docs/gmvae.md derives the maths and, in section 7, lists
where we depart from the original; docs/architecture.md shows where the model sits among the modules):

* recognition  y -> q(x|y), q(w|y) (diagonal Gaussians) and, for variant ``cv``, q(z|y) (K logits),
  heads on a shared body: FC = two Linear+BatchNorm+ReLU layers of width ``hidden``; conv (1x28x28) =
  1->16 6x6, 16->32 6x6, 32->64 4x4 stride 2 pad 1, 64->hidden 9x9, each with BatchNorm+ReLU.
* prior        w -> mu_k(w), log sigma2_k(w) for k = 1..K: Linear(Dw, hidden) + tanh, then one mean head
  and one log-variance head. The original has K separate Linear(hidden, Dx) heads each; here each is a
  single Linear(hidden, K*Dx) reshaped to (K, Dx), which is the same function with the same
  initialisation (Torch7's uniform depends only on fan-in) in one matrix product.
* decoder      x -> p(y|x): FC = two Linear+ReLU layers then an output layer; conv = Linear(Dx, hidden)
  + BatchNorm + ReLU, then transposed convs hidden->64 9x9, 64->32 4x4 s2 p1, 32->16 6x6, 16->C 6x6
  with BatchNorm+ReLU between. Bernoulli output: logits; Gaussian output: a mean and a log-variance.

Every log-variance a network produces passes through ``soft_clamp(raw, LOGVAR_LIMIT)`` =
15 tanh(raw / 15): near the identity for ordinary values, never beyond +-15, so exp(+-logvar) stays within
[3e-7, 3.3e6] and the variance ratios exp(logvar_q - logvar_p) of the KLs within 1.1e13: nothing
overflows or vanishes in float32 (see docs/gmvae.md, "Keeping log-variances in range").

    >>> import autograd_lite as ag
    >>> from gmvae_np.model import GMVAE, GMVAEConfig
    >>> model = GMVAE(GMVAEConfig(input_shape=(2,), likelihood="gaussian", K=3, Dx=2, Dw=2, hidden=8))
    >>> out = model.loss(ag.randn(5, 2))
    >>> out.objective.backward()          # gradients in every p.grad of model.parameters()
    >>> sorted(out.terms)
    ['conditional_prior', 'consistency_violation', 'reconstruction', 'w_prior', 'z_prior']

Shapes: y (B, *input_shape); with M = config.mc Monte Carlo samples, x (M, B, Dx), w (M, B, Dw), prior
parameters (M, B, K, Dx). The ELBO terms themselves are in elbo.py; GMVAEConfig and the check of its fields
in config.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import autograd_lite as ag
from autograd_lite import Tensor
from autograd_lite import functional as F
from autograd_lite.backend import get_backend

from . import elbo
from .augment import draw_shifts, shift_images
from .config import CONV_INPUT_SHAPES, WEIGHTS, GMVAEConfig, _is_int
from .diagnostics import batch_diagnostics
from .layers import (BatchNorm, Conv2d, ConvTranspose2d, Flatten, FourierFeatures, Linear, Module, ReLU, Reshape,
                     Sequential, Tanh)

__all__ = ["GMVAEConfig", "GMVAE", "LossResult", "LOGVAR_LIMIT", "CONV_INPUT_SHAPES"]

LOGVAR_LIMIT = 15.0
"""Every log-variance is kept in (-LOGVAR_LIMIT, LOGVAR_LIMIT) by a smooth tanh bound."""


@dataclass
class LossResult:
    """What ``GMVAE.loss`` returns.

    objective  scalar Tensor with the graph: the batch mean of the training objective (eta, alpha, lam)
    terms      per-data-point ELBO terms, each a detached Tensor of shape (B,) (see elbo.TERMS)
    neg_elbo   detached (B,) Tensor: the negative ELBO without eta, alpha or lam
    diagnostics  detached summaries of the batch's cluster assignments (gmvae_np.diagnostics)
    """

    objective: Tensor
    terms: dict = field(default_factory=dict)
    neg_elbo: Tensor | None = None
    diagnostics: dict = field(default_factory=dict)


# -- the model -------------------------------------------------------------------------------------

class GMVAE(Module):
    """A Gaussian-mixture VAE built from a :class:`GMVAEConfig`. Its generator, ``model.rng`` (``generator``,
    or one made from ``seed``), draws the initial weights, then any noise a call is given no ``rng`` for."""

    def __init__(self, config: GMVAEConfig, backend="numpy", seed: int = 0, generator=None):
        super().__init__()
        if isinstance(config, dict):
            config = GMVAEConfig.from_dict(config)
        if not isinstance(config, GMVAEConfig):
            raise TypeError(f"GMVAE needs a GMVAEConfig (or its to_dict()), got {type(config).__name__}")
        self.config = c = config
        b = get_backend(backend)
        self._backend = b
        self.rng = ag.Generator(b, seed) if generator is None else generator
        kw = {"backend": b, "dtype": c.dtype}
        init = dict(kw, generator=self.rng)   # for the layers with weights to draw
        H, D = c.hidden, c.input_size

        # recognition q(x|y), q(w|y) [, q(z|y)]
        if c.arch == "fc":
            reads = [Flatten()]
            if c.fourier_features:       # the rows beside sinusoids of them (layers.FourierFeatures)
                reads.append(FourierFeatures(D, c.fourier_features, c.fourier_scale, **init))
            width = D + 2 * c.fourier_features
            self.encoder = Sequential(*reads, Linear(width, H, **init), BatchNorm(H, **kw), ReLU(),
                                      Linear(H, H, **init), BatchNorm(H, **kw), ReLU())
        else:
            channels = c.input_shape[0]
            self.encoder = Sequential(
                Conv2d(channels, 16, 6, **init), BatchNorm(16, **kw), ReLU(),          # 28 -> 23
                Conv2d(16, 32, 6, **init), BatchNorm(32, **kw), ReLU(),                # 23 -> 18
                Conv2d(32, 64, 4, stride=2, padding=1, **init), BatchNorm(64, **kw), ReLU(),   # 18 -> 9
                Conv2d(64, H, 9, **init), BatchNorm(H, **kw), ReLU(),                  # 9 -> 1
                Flatten())
        self.x_mean = Linear(H, c.Dx, **init)
        self.x_logvar = Linear(H, c.Dx, **init)
        self.w_mean = Linear(H, c.Dw, **init)
        self.w_logvar = Linear(H, c.Dw, **init)
        self.z_logits = Linear(H, c.K, **init) if c.variant == "cv" else None

        # prior p(x | w, z=k) = N(mu_k(w), sigma2_k(w))
        self.prior_body = Sequential(Linear(c.Dw, H, **init), Tanh())
        self.prior_mean = Linear(H, c.K * c.Dx, **init)
        self.prior_logvar = Linear(H, c.K * c.Dx, **init)

        # decoder p(y|x): logits (Bernoulli), or mean and log-variance (Gaussian) side by side
        per_value = 2 if c.likelihood == "gaussian" else 1
        if c.arch == "fc":
            self.decoder = Sequential(Linear(c.Dx, H, **init), ReLU(), Linear(H, H, **init), ReLU(),
                                      Linear(H, per_value * D, **init))
        else:
            channels = c.input_shape[0]
            self.decoder = Sequential(
                Linear(c.Dx, H, **init), BatchNorm(H, **kw), ReLU(), Reshape(H, 1, 1),
                ConvTranspose2d(H, 64, 9, **init), BatchNorm(64, **kw), ReLU(),                   # 1 -> 9
                ConvTranspose2d(64, 32, 4, stride=2, padding=1, **init), BatchNorm(32, **kw), ReLU(),  # -> 18
                ConvTranspose2d(32, 16, 6, **init), BatchNorm(16, **kw), ReLU(),                  # 18 -> 23
                ConvTranspose2d(16, per_value * channels, 6, **init),                             # 23 -> 28
                Flatten())   # (N, per_value * D): the Gaussian's mean channels first, then log-variances

    # -- the three networks (with graph) -------------------------------------------------------------
    def _encode(self, y: Tensor) -> dict:
        h = self.encoder(y)
        q = {"x_mean": self.x_mean(h), "x_logvar": F.soft_clamp(self.x_logvar(h), LOGVAR_LIMIT),
             "w_mean": self.w_mean(h), "w_logvar": F.soft_clamp(self.w_logvar(h), LOGVAR_LIMIT)}
        if self.z_logits is not None:
            q["z_logits"] = self.z_logits(h)
        return q

    def _prior(self, w: Tensor):
        """w (N, Dw) -> mu_k(w), log sigma2_k(w), each (N, K, Dx)."""
        c = self.config
        h = self.prior_body(w)
        shape = (w.shape[0], c.K, c.Dx)
        mean = ag.reshape(self.prior_mean(h), shape)
        logvar = ag.reshape(F.soft_clamp(self.prior_logvar(h), LOGVAR_LIMIT), shape)
        return mean, logvar

    def _decode(self, x: Tensor) -> dict:
        """x (N, Dx) -> the parameters of p(y|x), each (N, D) (flattened observations)."""
        out = self.decoder(x)
        if self.config.likelihood == "bernoulli":
            return {"logits": out}
        mean, raw_logvar = ag.split(out, 2, axis=-1)
        return {"mean": mean, "logvar": F.soft_clamp(raw_logvar, LOGVAR_LIMIT)}

    # -- inputs ----------------------------------------------------------------------------------------
    def _generator(self, rng):
        """``rng`` (checked to draw on the model's backend), or the model's own generator."""
        if rng is None:
            return self.rng
        if not isinstance(rng, ag.Generator) or rng.backend is not self._backend:
            raise ValueError(f"rng must be an ag.Generator on the model's backend '{self._backend.name}', "
                             f"got {rng!r}")
        return rng

    def to(self, backend) -> "GMVAE":
        """Move the parameters and buffers (Module.to); the model's generator follows, same stream."""
        super().to(backend)
        if self.rng.backend is not self._backend:
            self.rng = self.rng.on(self._backend)
        return self

    def _as_input(self, y) -> Tensor:
        """y as a Tensor of the model's backend and dtype, with shape (B, *input_shape) checked."""
        c, b = self.config, self._backend
        if isinstance(y, Tensor):
            if y.backend is not b:
                raise ValueError(f"y is on backend '{y.backend.name}' but the model is on '{b.name}'; "
                                 f"move it with y.to('{b.name}')")
            if y.dtype != b.dtype(c.dtype):
                y = ag.astype(y, c.dtype)
        else:
            y = ag.tensor(y, dtype=c.dtype, backend=b)
        if y.ndim < 1 or tuple(y.shape[1:]) != c.input_shape or y.shape[0] < 1:
            raise ValueError(f"y has shape {y.shape}; this model expects (batch, *{c.input_shape}) with "
                             f"batch >= 1")
        return y

    def _noise(self, noise, M: int, B: int, rng) -> dict:
        """The reparameterisation noise: injected arrays (checked) or fresh draws from rng (or self.rng)."""
        c, b = self.config, self._backend
        shapes = {"x": (M, B, c.Dx), "w": (M, B, c.Dw)}
        if noise is None:
            rng = self._generator(rng)
            return {k: Tensor(rng.normal(s, dtype=c.dtype), b) for k, s in shapes.items()}
        if not isinstance(noise, dict) or set(noise) - {"shift"} != set(shapes):
            raise ValueError(f"noise must be a dict with keys 'x' and 'w' (standard normal arrays of shapes "
                             f"{shapes['x']} and {shapes['w']}), and 'shift' for the invariance term; got "
                             f"{noise!r:.80}")
        out = {}
        for k, s in shapes.items():
            a = noise[k]
            t = ag.tensor(a.data if isinstance(a, Tensor) else a, dtype=c.dtype, backend=b)
            if t.shape != s:
                raise ValueError(f"noise['{k}'] has shape {t.shape}; expected (mc, batch, D{k}) = {s}")
            out[k] = t
        return out

    # -- the loss --------------------------------------------------------------------------------------
    def _forward(self, y, noise, rng=None):
        """One pass through the three networks: y, q(x|y) q(w|y) [q(z|y)], the samples x (M, B, Dx), the
        prior parameters mu_k(w), log sigma2_k(w) (M, B, K, Dx) and the decoder's output (M, B, D)."""
        c = self.config
        y = self._as_input(y)
        B, M = y.shape[0], c.mc
        q = self._encode(y)
        eps = self._noise(noise, M, B, rng)
        x = F.gaussian_sample(q["x_mean"], q["x_logvar"], eps["x"])   # (M, B, Dx)
        w = F.gaussian_sample(q["w_mean"], q["w_logvar"], eps["w"])   # (M, B, Dw)

        prior_mean, prior_logvar = self._prior(ag.reshape(w, (M * B, c.Dw)))
        prior_mean = ag.reshape(prior_mean, (M, B, c.K, c.Dx))
        prior_logvar = ag.reshape(prior_logvar, (M, B, c.K, c.Dx))
        decoded = {k: ag.reshape(v, (M, B, c.input_size))
                   for k, v in self._decode(ag.reshape(x, (M * B, c.Dx))).items()}
        return y, q, x, prior_mean, prior_logvar, decoded

    def loss(self, y, noise: dict | None = None, rng=None, weights: dict | None = None,
             neighbours=None) -> LossResult:
        """The training objective and the ELBO terms for a batch y of shape (B, *input_shape).

        ``noise`` = {"x": (M, B, Dx), "w": (M, B, Dw)} standard normal arrays makes the loss a
        deterministic function of y and the parameters (for gradient checks); by default they are drawn
        from ``rng``, else the model's own generator. BatchNorm follows the model's train/eval mode.
        ``weights`` overrides objective weights for this batch: any of alpha, eta, lam, balance and kl
        (the weight of the KL terms, 1 by default), as an annealing schedule gives them (gmvae_np.schedule).
        ``neighbours`` (B, *input_shape): for each row of y, one of its neighbours in the training data, which
        the neighbour term (weight ``neighbour_weight``) asks for the same cluster; training needs them, an
        evaluation (eval mode) without them leaves the term out of the objective.
        """
        c = self.config
        w = {name: getattr(c, name) for name in WEIGHTS}
        if weights:
            unknown = sorted(set(weights) - set(w) - {"kl"})
            if unknown:
                raise ValueError(f"loss: unknown weight(s) {', '.join(unknown)}; the objective's weights are "
                                 f"{', '.join(WEIGHTS)} and kl")
            w.update(weights)
        y, q, x, prior_mean, prior_logvar, decoded = self._forward(y, noise, rng)
        B = y.shape[0]

        log_p_z = elbo.z_posterior(x, prior_mean, prior_logvar)       # log p(z|x,w), (M, B, K)
        if c.variant == "cv":
            log_cluster = ag.log_softmax(q["z_logits"], axis=-1)      # log q(z|y), (B, K)
        else:
            log_cluster = log_p_z
        kl_k = elbo.component_kl(q["x_mean"], q["x_logvar"], prior_mean, prior_logvar)   # (M, B, K)
        terms = {
            "reconstruction": elbo.reconstruction(ag.reshape(y, (B, c.input_size)), decoded, c.likelihood),
            "conditional_prior": elbo.conditional_prior(ag.exp(log_cluster), kl_k),
            "w_prior": elbo.w_prior(q["w_mean"], q["w_logvar"]),
            "z_prior": elbo.z_prior(log_cluster),
            "consistency_violation": elbo.consistency_violation(log_p_z),
        }
        batch_kl = None
        if w["balance"]:
            batch_kl = (elbo.batch_floor(log_cluster, c.balance_floor) if c.balance_floor
                        else elbo.batch_balance(log_cluster))
        moved_agreement = self._moved_agreement(y, log_cluster, noise, rng) if w["invariance"] else None
        pairs = {}
        if (w["neighbour_weight"] or w["neighbour_code_weight"]) and (neighbours is not None or self.training):
            pairs = self._neighbour_terms(neighbours, q, log_cluster, w)
        elif w["neighbour_weight"] or w["neighbour_code_weight"]:   # eval mode without neighbours: the bound only
            w["neighbour_weight"] = w["neighbour_code_weight"] = 0.0
        objective = elbo.objective(terms, c.variant, **w, batch_kl=batch_kl, moved_agreement=moved_agreement,
                                   **pairs)
        return LossResult(objective=objective, terms={k: v.detach() for k, v in terms.items()},
                          neg_elbo=elbo.negative_elbo(terms).detach(),
                          diagnostics=batch_diagnostics(log_cluster, kl_k))

    def _moved_agreement(self, y: Tensor, log_cluster: Tensor, noise, rng) -> Tensor:
        """elbo.assignment_agreement between y and a copy of it with each image moved by up to
        ``config.shift`` pixels each way: by noise["shift"] (B, 2) when given, else by moves drawn after
        the reparameterisation noise."""
        c, b = self.config, self._backend
        if c.image_shape is None:
            raise ValueError("loss: an invariance weight needs GMVAEConfig.image_shape, the shape of the "
                             "images to move")
        if noise is not None and "shift" in noise:
            shifts = b.asarray(noise["shift"], dtype="int64")
            if tuple(shifts.shape) != (y.shape[0], 2):
                raise ValueError(f"noise['shift'] has shape {tuple(shifts.shape)}; expected (batch, 2) = "
                                 f"{(y.shape[0], 2)}")
        else:
            shifts = draw_shifts(self._generator(rng), y.shape[0], c.shift)
        return self._agreement_with(shift_images(y, shifts, c.image_shape), log_cluster)

    def _neighbour_terms(self, neighbours, q: dict, log_cluster: Tensor, w: dict) -> dict:
        """elbo.assignment_agreement and elbo.code_agreement between each row of the batch and its neighbour
        (same batch position), each only when its weight in ``w`` is on; the neighbours go through the
        recognition network once for both."""
        if neighbours is None:
            raise ValueError("loss: a neighbour weight needs neighbours, one neighbour of each row of y "
                             "(gmvae_np.neighbours.sample_neighbours draws them from the training data's graph)")
        neighbours = self._as_input(neighbours)
        if neighbours.shape[0] != log_cluster.shape[0]:
            raise ValueError(f"loss: {neighbours.shape[0]} neighbours for a batch of {log_cluster.shape[0]} rows; "
                             f"give one neighbour per row")
        other = self._encode(neighbours)
        pairs = {}
        if w["neighbour_weight"]:
            pairs["neighbour_agreement"] = elbo.assignment_agreement(
                log_cluster, ag.log_softmax(other["z_logits"], axis=-1))
        if w["neighbour_code_weight"]:
            pairs["neighbour_codes"] = elbo.code_agreement(q["x_mean"], q["x_logvar"], other["x_mean"],
                                                           other["x_logvar"])
        return pairs

    def _agreement_with(self, other: Tensor, log_cluster: Tensor) -> Tensor:
        """elbo.assignment_agreement of log q(z|y) and log q(z|other), other through the same networks."""
        log_other = ag.log_softmax(self._encode(other)["z_logits"], axis=-1)
        return elbo.assignment_agreement(log_cluster, log_other)

    # -- inference (no graph; the train/eval mode is the caller's) ------------------------------------
    def encode(self, y) -> dict:
        """The parameters of q(x|y) and q(w|y): {"x_mean", "x_logvar", "w_mean", "w_logvar"}, each (B, D.)."""
        with ag.no_grad():
            q = self._encode(self._as_input(y))
        return {k: q[k] for k in ("x_mean", "x_logvar", "w_mean", "w_logvar")}

    def predict_proba(self, y) -> Tensor:
        """Cluster probabilities (B, K): q(z|y) for cv; p(z | x = E[x], w = E[w]) for mi."""
        with ag.no_grad():
            q = self._encode(self._as_input(y))
            if self.config.variant == "cv":
                return ag.softmax(q["z_logits"], axis=-1)
            mean, logvar = self._prior(q["w_mean"])
            return ag.exp(elbo.z_posterior(q["x_mean"], mean, logvar))

    def predict(self, y) -> Tensor:
        """The most probable cluster of each observation, an int64 Tensor (B,)."""
        p = self.predict_proba(y)
        return Tensor(p.backend.xp.argmax(p.data, axis=-1), p.backend)

    def prior(self, w) -> tuple:
        """mu_k(w), log sigma2_k(w) for w of shape (B, Dw): two Tensors of shape (B, K, Dx)."""
        c = self.config
        w = w if isinstance(w, Tensor) else ag.tensor(w, dtype=c.dtype, backend=self._backend)
        if w.ndim != 2 or w.shape[1] != c.Dw:
            raise ValueError(f"w has shape {w.shape}; expected (batch, Dw) = (batch, {c.Dw})")
        with ag.no_grad():
            return self._prior(w)

    def decode_mean(self, x) -> Tensor:
        """E[y|x] with y's shape (B, *input_shape): sigmoid(logits) (Bernoulli) or the mean (Gaussian)."""
        c = self.config
        x = x if isinstance(x, Tensor) else ag.tensor(x, dtype=c.dtype, backend=self._backend)
        if x.ndim != 2 or x.shape[1] != c.Dx:
            raise ValueError(f"x has shape {x.shape}; expected (batch, Dx) = (batch, {c.Dx})")
        with ag.no_grad():
            out = self._decode(x)
            mean = ag.sigmoid(out["logits"]) if c.likelihood == "bernoulli" else out["mean"]
            return ag.reshape(mean, (x.shape[0],) + c.input_shape)

    def reconstruct(self, y) -> Tensor:
        """E[y | x = E_q[x|y]]: the decoder mean at the mean of q(x|y), with y's shape."""
        return self.decode_mean(self.encode(y)["x_mean"])

    def sample(self, n: int, k: int | None = None, rng=None) -> Tensor:
        """n draws from the generative model, returned as decoder means E[y|x] of shape (n, *input_shape).

        Without k: w ~ N(0, I), z ~ Uniform{0..K-1}, x ~ N(mu_z(w), sigma2_z(w)). With k: z = k and w = 0,
        as the original code's per-cluster sample grid, so only x varies. Draws come from ``rng``, else
        the model's own generator.
        Decoder means (probabilities for Bernoulli) rather than sampled y are what one looks at.
        """
        c, b = self.config, self._backend
        if not _is_int(n) or n < 1:
            raise ValueError(f"sample: n must be a positive int, got {n!r}")
        xp, rng = b.xp, self._generator(rng)
        if k is None:
            w = Tensor(rng.normal((n, c.Dw), dtype=c.dtype), b)
            u = rng.uniform((n,), dtype="float64")
            z = xp.minimum(xp.astype(xp.floor(u * float(c.K)), xp.int64), c.K - 1)
        else:
            if not _is_int(k) or not 0 <= k < c.K:
                raise ValueError(f"sample: k must be a cluster index in 0..{c.K - 1}, got {k!r}")
            w = ag.zeros(n, c.Dw, dtype=c.dtype, backend=b)
            z = xp.full((n,), k, dtype=xp.int64, device=b.device)
        with ag.no_grad():
            mean, logvar = self._prior(w)                                     # (n, K, Dx)
            pick = ag.reshape(ag.one_hot(Tensor(z, b), c.K, dtype=c.dtype), (n, c.K, 1))
            mu, lv = ag.sum(pick * mean, axis=1), ag.sum(pick * logvar, axis=1)
            x = F.gaussian_sample(mu, lv, Tensor(rng.normal((n, c.Dx), dtype=c.dtype), b))
        return self.decode_mean(x)

    def extra_repr(self) -> str:
        c = self.config
        return (f"arch={c.arch!r}, likelihood={c.likelihood!r}, variant={c.variant!r}, K={c.K}, Dx={c.Dx}, "
                f"Dw={c.Dw}, hidden={c.hidden}, input_shape={c.input_shape}")

    # -- the exact bound with z summed out (reported, not trained on) --------------------------------
    def marginal_negative_elbo(self, y, noise: dict | None = None, rng=None) -> Tensor:
        """-ELBO with the posterior q(x|y) q(w|y) p(z|x,w), z summed out exactly; a detached (B,) Tensor.

        reconstruction + w_prior + elbo.mixture_prior: one logsumexp over the K components instead of the
        closed-form conditional prior and z prior. For variant mi it is the exact value of the bound that
        ``loss().neg_elbo`` approximates from above (never larger in expectation); for cv, p(z|x,w) is
        the best cluster posterior given (x, w), so it is never larger than cv's -ELBO in expectation
        either. ``noise``, ``rng`` and the train/eval mode work as in :meth:`loss`; M = config.mc samples.
        """
        c = self.config
        with ag.no_grad():
            y, q, x, prior_mean, prior_logvar, decoded = self._forward(y, noise, rng)
            B = y.shape[0]
            return (elbo.reconstruction(ag.reshape(y, (B, c.input_size)), decoded, c.likelihood)
                    + elbo.w_prior(q["w_mean"], q["w_logvar"])
                    + elbo.mixture_prior(x, q["x_mean"], q["x_logvar"], prior_mean, prior_logvar))
