"""The GMVAE evidence lower bound, one term per function, named as in the paper.

Generative model (Dilokthanakul et al., 2016), for an observation y with latents x (size Dx), w (size Dw)
and a cluster z in {1..K}:

    w ~ N(0, I)                  z ~ Mult(pi), pi_k = 1/K
    x | z=k, w ~ N(mu_k(w), diag sigma2_k(w))          y | x ~ p(y | x)  (Bernoulli or Gaussian decoder)

Recognition: q(x|y) and q(w|y) are diagonal Gaussians; the cluster posterior is either a recognition head
q(z|y) (variant ``cv``) or the exact p(z|x,w) of the generative model (variant ``mi``). With cluster
weights p_k standing for whichever is used, the negative ELBO is a sum of four terms (the three KLs are
non-negative; the fifth function, ``consistency_violation``, is a regulariser and no part of the bound):

    -ELBO =   reconstruction         -E_q(x|y)[ log p(y|x) ]
            + conditional_prior       E_q(w|y)[ sum_k p_k KL( q(x|y) || N(mu_k(w), sigma2_k(w)) ) ]
            + w_prior                 KL( q(w|y) || N(0, I) )
            + z_prior                 KL( p_k || pi )           (E_q(x|y)q(w|y) of it for mi)

and the two variants train on it with a regulariser against over-regularisation (docs/gmvae.md):

    cv:  objective = reconstruction + conditional_prior + w_prior + eta * z_prior
                     + alpha * consistency_violation,
         p_k = q(z=k|y), consistency_violation = E_q(x|y)q(w|y)[ H(p(z|x,w)) ] >= 0.
         The paper writes the CV term as -alpha E[ sum_k p(z_k|x,w) log p(z_k|x,w) ] added to the loss
         that is minimised, i.e. +alpha times the entropy: the original code's EntropyCriterion returns
         H and back-propagates alpha dH/dp. We minimise the same quantity.

    mi:  objective = mean_b(reconstruction + conditional_prior + w_prior) + max(lam, mean_b(z_prior)),
         p_k = p(z=k|x,w), z_prior = E[ KL(p(z|x,w) || pi) ]. The minimum-information constraint
         ("free bits") stops pushing the cluster KL down once its batch mean is below lam, as the
         original code does (it tests the batch mean against lam).

Every term is returned per data point, shape (B,); expectations over q are Monte Carlo averages over the
M samples (leading axis of size M). ``negative_elbo`` adds the terms with all weights at their ELBO value
(eta = 1, alpha = 0, lam = 0). The functions only combine tensors: the networks live in model.py.

Shapes used below: y (B, D); samples x (M, B, Dx); q(x|y) parameters (B, Dx); prior parameters
mu_k(w), log sigma2_k(w) for each sample of w: (M, B, K, Dx); cluster probabilities (B, K) or (M, B, K).
"""
from __future__ import annotations

import math

import autograd_lite as ag
from autograd_lite import functional as F

TERMS = ("reconstruction", "conditional_prior", "w_prior", "z_prior", "consistency_violation")
VARIANTS = ("cv", "mi")
# The weights each variant's objective (below) reads; the others play no part in it.
VARIANT_WEIGHTS = {"cv": ("alpha", "eta", "balance", "invariance", "neighbour_weight", "neighbour_code_weight"),
                   "mi": ("lam", "balance")}
LIKELIHOODS = ("bernoulli", "gaussian")


def _average_over_samples(v):
    """E_q[...] as the mean over the leading Monte Carlo axis: (M, B) -> (B,); (B,) is returned as is."""
    return ag.mean(v, axis=0) if v.ndim == 2 else v


def reconstruction(y, decoded: dict, likelihood: str):
    """-E_q(x|y)[ log p(y|x) ] ~= -(1/M) sum_m log p(y | x^(m)).  Shape (B,).

    ``decoded`` holds the decoder's output for the M samples of x: ``{"logits": (M, B, D)}`` for a
    Bernoulli likelihood, ``{"mean": ..., "logvar": ...}`` (each (M, B, D)) for a Gaussian one.
    """
    if likelihood == "bernoulli":
        log_p = F.bernoulli_log_prob_logits(y, decoded["logits"])
    elif likelihood == "gaussian":
        log_p = F.gaussian_log_prob(y, decoded["mean"], decoded["logvar"])
    else:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    return -_average_over_samples(log_p)


def component_kl(x_mean, x_logvar, prior_mean, prior_logvar):
    """KL( q(x|y) || N(mu_k(w), sigma2_k(w)) ) for every component k and sample w.  Shape (M, B, K).

    x_mean, x_logvar: (B, Dx); prior_mean, prior_logvar: (M, B, K, Dx), one set of K components per
    sample w^(m). The conditional prior weights these by the cluster probabilities; their spread over k
    is what decides how sharply a data point is assigned (gmvae_np.diagnostics).
    """
    B, Dx = x_mean.shape
    q_mean = ag.reshape(x_mean, (1, B, 1, Dx))      # broadcast over samples and components
    q_logvar = ag.reshape(x_logvar, (1, B, 1, Dx))
    return F.gaussian_kl(q_mean, q_logvar, prior_mean, prior_logvar)


def conditional_prior(cluster_probs, kl_k):
    """E_q(w|y)[ sum_k p_k KL( q(x|y) || N(mu_k(w), sigma2_k(w)) ) ].  Shape (B,).

    cluster_probs: p_k, (B, K) for q(z|y) or (M, B, K) for p(z|x^(m), w^(m)); kl_k: (M, B, K) from
    :func:`component_kl`, one KL per sample w^(m) and component.
    """
    return _average_over_samples(ag.sum(cluster_probs * kl_k, axis=-1))


def w_prior(w_mean, w_logvar):
    """KL( q(w|y) || N(0, I) ).  Shape (B,)."""
    return F.standard_gaussian_kl(w_mean, w_logvar)


def z_prior(log_cluster_probs):
    """KL( p(z) || pi ) with the uniform prior pi_k = 1/K.  Shape (B,).

    log_cluster_probs: log q(z|y) of shape (B, K) (variant cv), or log p(z|x^(m), w^(m)) of shape
    (M, B, K) (variant mi), in which case the KL is averaged over the M samples.
    """
    K = log_cluster_probs.shape[-1]
    return _average_over_samples(F.categorical_kl(log_cluster_probs, -math.log(K)))


def consistency_violation(log_p_z_given_xw):
    """E_q(x|y)q(w|y)[ H(p(z|x,w)) ] = -E[ sum_k p(z_k|x,w) log p(z_k|x,w) ].  Shape (B,).

    log_p_z_given_xw: (M, B, K) from :func:`z_posterior`. Small when each sample of (x, w) is assigned
    to one cluster with confidence. Note H = log K - KL(p(z|x,w) || pi): for mi it is z_prior mirrored.
    """
    return _average_over_samples(F.entropy(log_p_z_given_xw))


def z_posterior(x, prior_mean, prior_logvar):
    """log p(z=k | x, w) by Bayes' rule with a uniform pi:  log_softmax_k( log N(x | mu_k(w), sigma2_k(w)) ).

    x: (..., Dx); prior_mean, prior_logvar: (..., K, Dx). Returns (..., K). The pi_k = 1/K cancel in the
    normalisation, and log_softmax never exponentiates a large log-density.
    """
    x_k = ag.reshape(x, x.shape[:-1] + (1, x.shape[-1]))          # broadcast against the K components
    log_lik = F.gaussian_log_prob(x_k, prior_mean, prior_logvar)   # (..., K)
    return ag.log_softmax(log_lik, axis=-1)


def mixture_prior(x, x_mean, x_logvar, prior_mean, prior_logvar):
    """E_q(x|y)q(w|y)[ log q(x|y) - log sum_k pi_k N(x | mu_k(w), sigma2_k(w)) ].  Shape (B,).

    With p(z|x,w) as the cluster posterior (variant mi), the conditional prior and the z prior of the
    ELBO add up to exactly this: log p(x|w,z) + log pi_z - log p(z|x,w) = log p(x|w), whatever z is, so
    z is summed out and one logsumexp over the K components replaces the closed-form KLs. The
    ``conditional_prior + z_prior`` the paper's objective uses exceeds it in expectation by
    sum_k Cov_q(x|y)( p(z=k|x,w), log N(x | mu_k(w), sigma2_k(w)) ) >= 0 (docs/gmvae.md, section 3), so
    ``reconstruction + w_prior + mixture_prior`` is the tighter of the two upper bounds on -log p(y).

    x: the M samples of x, (M, B, Dx); x_mean, x_logvar: (B, Dx); prior_mean, prior_logvar: (M, B, K, Dx).
    A Monte Carlo average over the M samples, like every other term; differentiable, though only reported.
    """
    K = prior_mean.shape[-2]
    log_q = F.gaussian_log_prob(x, x_mean, x_logvar)                    # (M, B)
    x_k = ag.reshape(x, x.shape[:-1] + (1, x.shape[-1]))                # broadcast against the K components
    log_n = F.gaussian_log_prob(x_k, prior_mean, prior_logvar)          # (M, B, K)
    log_p_x_given_w = ag.logsumexp(log_n, axis=-1) - math.log(K)        # log sum_k pi_k N_k(x), pi_k = 1/K
    return _average_over_samples(log_q - log_p_x_given_w)


def batch_balance(log_cluster_probs):
    """KL( p_bar || pi ) with p_bar_k = mean_b p_k, the batch's average cluster assignment.  A scalar.

    log_cluster_probs: log q(z|y) (B, K), or log p(z|x^(m), w^(m)) (M, B, K), whose samples are averaged
    too. It is 0 when the batch as a whole uses every cluster equally, whatever each point's own
    assignment; log K when every point goes to the same cluster. Not an ELBO term: the z prior
    KL(p_k || pi) of each point costs log K for every one-hot assignment, however few clusters are
    used, and so cannot tell a collapse into few clusters from a balanced clustering; this term can
    (docs/gmvae.md, section 9). log p_bar comes from a log-mean-exp of the log-probabilities.
    """
    K = log_cluster_probs.shape[-1]
    rows = ag.reshape(log_cluster_probs, (math.prod(log_cluster_probs.shape[:-1]), K))
    log_p_bar = F.log_mean_exp(rows, axis=0)                        # (K,)
    return F.categorical_kl(log_p_bar, -math.log(K))


def batch_floor(log_cluster_probs, floor: float):
    """sum_k max(0, log(floor / K) - log p_bar_k), p_bar_k = mean_b p_k: the balance term's floor.  A scalar.

    log_cluster_probs as for :func:`batch_balance`; floor f in (0, 1]. It is 0 while every cluster holds at
    least f/K of the batch, whatever the shares above that, and grows without bound as a cluster empties.
    Unlike KL(p_bar || pi), which asks every cluster for 1/K of the data and so splits a large cluster to
    fill a small one, it only keeps the K clusters in use: a prior that cannot empty a component, with no
    opinion on the sizes of the clusters it keeps (docs/gmvae.md, section 9).
    """
    K = log_cluster_probs.shape[-1]
    rows = ag.reshape(log_cluster_probs, (math.prod(log_cluster_probs.shape[:-1]), K))
    log_p_bar = F.log_mean_exp(rows, axis=0)                        # (K,)
    return ag.sum(ag.relu(math.log(float(floor) / K) - log_p_bar))


def assignment_agreement(log_q, log_q_moved):
    """mean_b -log sum_k q(z=k|y_b) q(z=k|T y_b): how unlikely it is that an image and its moved copy
    (T: a shift by a few pixels, :func:`gmvae_np.augment.shift_images`) are drawn into the same cluster.
    A scalar. The neighbour term reads the same function with T y_b a neighbour of y_b in the training
    data (gmvae_np.neighbours; docs/gmvae.md, section 11).

    log_q, log_q_moved: log q(z|y) and log q(z|T y), (B, K); the sum is a logsumexp of log_q + log_q_moved.
    It is 0 only when both are the same one-hot assignment, and log K when both are uniform, so unlike
    KL(q(z|y) || q(z|T y)), which is 0 for any pair of equal assignments, uniform ones included, it cannot
    be met by giving up on clustering. With the batch balance term, which keeps every cluster in use, it
    plays the part of the mutual information between the clusters of an image and of its moved copy
    that invariant information clustering maximises (Ji et al., 2019), written for the GMVAE's q(z|y).
    Not an ELBO term: the bound treats a moved digit as another observation (docs/gmvae.md, section 10).
    The gradient reaches both.
    """
    return -ag.mean(ag.logsumexp(log_q + log_q_moved, axis=-1))


def code_agreement(x_mean, x_logvar, other_mean, other_logvar):
    """mean_b 1/2 [ KL(q(x|y_b) || q(x|y'_b)) + KL(q(x|y'_b) || q(x|y_b)) ]: how far apart the codes of a row
    and of its neighbour y'_b lie, in nats (the symmetric KL of two diagonal Gaussians). A scalar.

    x_mean, x_logvar, other_mean, other_logvar: (B, Dx). 0 only when both rows get the same q(x|.). It pulls
    the codes of neighbouring rows together, so that the code space, where the mixture's components
    live, follows the data's neighbourhoods as well as its pixels' largest directions (the graph embedding
    of DGG, Yang et al., 2019; docs/gmvae.md, section 11). Not an ELBO term; the gradient reaches both.
    """
    there = F.gaussian_kl(x_mean, x_logvar, other_mean, other_logvar)
    back = F.gaussian_kl(other_mean, other_logvar, x_mean, x_logvar)
    return ag.mean(0.5 * (there + back))


def negative_elbo(terms: dict):
    """The negative ELBO per data point: the sum of the four ELBO terms (no eta, alpha or lambda)."""
    return terms["reconstruction"] + terms["conditional_prior"] + terms["w_prior"] + terms["z_prior"]


def objective(terms: dict, variant: str, *, alpha: float = 1.0, eta: float = 1.0, lam: float = 0.0,
              balance: float = 0.0, batch_kl=None, kl: float = 1.0, invariance: float = 0.0,
              moved_agreement=None, neighbour_weight: float = 0.0, neighbour_agreement=None,
              neighbour_code_weight: float = 0.0, neighbour_codes=None):
    """The scalar training objective (minimised): a batch mean of the terms, weighted per variant.

    cv: mean_b( reconstruction + kl (conditional_prior + w_prior + eta z_prior) + alpha consistency_violation )
    mi: mean_b( reconstruction + kl (conditional_prior + w_prior) ) + kl max(lam, mean_b(z_prior))
    and, for both, + balance * batch_kl with batch_kl = :func:`batch_balance` (the term is left out
    when balance is 0), and, for cv, + invariance * moved_agreement with moved_agreement =
    :func:`assignment_agreement` (left out when invariance is 0), and + neighbour_weight *
    neighbour_agreement, the same agreement between each row and a neighbour drawn from the
    training data's neighbour graph (cv; left out when neighbour_weight is 0), and + neighbour_code_weight *
    neighbour_codes, :func:`code_agreement` of the same pairs (cv; left out when 0). ``kl`` weighs the three KL terms
    together: 1 is the ELBO's own weight, and a KL warm-up (gmvae_np.schedule) raises it from below 1
    during the first epochs.
    """
    alpha, eta, lam, balance, kl = float(alpha), float(eta), float(lam), float(balance), float(kl)
    invariance, neighbour_weight = float(invariance), float(neighbour_weight)
    neighbour_code_weight = float(neighbour_code_weight)

    def weighted(t):                                   # kl * t, and t itself (the same floats) at kl = 1
        return t if kl == 1.0 else kl * t

    if variant == "cv":
        per_point = (terms["reconstruction"] + weighted(terms["conditional_prior"]) + weighted(terms["w_prior"])
                     + weighted(eta * terms["z_prior"]) + alpha * terms["consistency_violation"])
        total = ag.mean(per_point)
    elif variant == "mi":
        rest = ag.mean(terms["reconstruction"] + weighted(terms["conditional_prior"]) + weighted(terms["w_prior"]))
        z = ag.mean(terms["z_prior"])
        total = rest + weighted(ag.where(z > lam, z, lam))    # max(lam, KL): no gradient below lam
    else:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if balance:
        if batch_kl is None:
            raise ValueError("objective: balance > 0 needs batch_kl = batch_balance(log cluster probabilities)")
        total = total + balance * batch_kl
    for name, weight, value, needs in (
            ("invariance", invariance, moved_agreement, "moved_agreement = assignment_agreement(log q(z|y), "
                                                        "log q(z|moved y))"),
            ("neighbour_weight", neighbour_weight, neighbour_agreement, "neighbour_agreement = "
             "assignment_agreement(log q(z|y), log q(z|a neighbour of y))"),
            ("neighbour_code_weight", neighbour_code_weight, neighbour_codes, "neighbour_codes = "
             "code_agreement(q(x|y), q(x|a neighbour of y))")):
        if weight:      # the cv-only terms that compare a row with another input: weight * their value
            if variant != "cv" or value is None:
                raise ValueError(f"objective: {name} > 0 needs the cv variant and {needs}")
            total = total + weight * value
    return total
