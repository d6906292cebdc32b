"""The same GMVAE written in PyTorch: the peer that bench_step.py times ours against.

It mirrors gmvae_np's architecture, sizes, dtype and objective (the ``cv`` variant: recognition q(x|y),
q(w|y), q(z|y); prior network p(x|w,z); Bernoulli decoder p(y|x); the ELBO terms of gmvae_np.elbo, and the
batch balance term when ``balance`` is not 0, as the MNIST recipe weighs it), so that a step here does the
same arithmetic as a step of ours. PyTorch is a benchmark-only optional dependency: nothing in the package
imports this file, and tests/test_bench_step.py checks it against our model only where PyTorch is installed.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def fc_body(d_in: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU())


def conv_body() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 6), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 6), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 500, 9), nn.BatchNorm2d(500), nn.ReLU(), nn.Flatten())


def conv_decoder(dx: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(dx, 500), nn.BatchNorm1d(500), nn.ReLU(), nn.Unflatten(1, (500, 1, 1)),
        nn.ConvTranspose2d(500, 64, 9), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.ConvTranspose2d(32, 16, 6), nn.BatchNorm2d(16), nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 6), nn.Flatten())


class TorchGMVAE(nn.Module):
    def __init__(self, arch="fc", input_dim=784, K=16, Dx=200, Dw=150, hidden=1000, mc=1,
                 alpha=0.4, eta=1.0, balance=0.0):
        super().__init__()
        self.arch, self.K, self.Dx, self.Dw, self.mc = arch, K, Dx, Dw, mc
        self.alpha, self.eta, self.balance = alpha, eta, balance
        if arch == "fc":
            self.body = fc_body(input_dim, hidden)
            feat = hidden
            self.decoder = nn.Sequential(nn.Linear(Dx, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                         nn.ReLU(), nn.Linear(hidden, input_dim))
        else:
            self.body = conv_body()
            feat = 500
            self.decoder = conv_decoder(Dx)
        self.x_mean, self.x_logvar = nn.Linear(feat, Dx), nn.Linear(feat, Dx)
        self.w_mean, self.w_logvar = nn.Linear(feat, Dw), nn.Linear(feat, Dw)
        self.z_logits = nn.Linear(feat, K)
        self.prior_body = nn.Sequential(nn.Linear(Dw, hidden), nn.Tanh())
        self.prior_mean = nn.Linear(hidden, K * Dx)
        self.prior_logvar = nn.Linear(hidden, K * Dx)

    def loss(self, y: torch.Tensor) -> torch.Tensor:
        B, M, K, Dx = y.shape[0], self.mc, self.K, self.Dx
        h = self.body(y)
        mx, lvx = self.x_mean(h), self.x_logvar(h)
        mw, lvw = self.w_mean(h), self.w_logvar(h)
        log_qz = F.log_softmax(self.z_logits(h), dim=-1)
        qz = log_qz.exp()
        x = mx + torch.exp(0.5 * lvx) * torch.randn(M, B, Dx, dtype=y.dtype, device=y.device)
        w = mw + torch.exp(0.5 * lvw) * torch.randn(M, B, self.Dw, dtype=y.dtype, device=y.device)
        # reconstruction: -E_q[log p(y|x)], Bernoulli with logits
        logits = self.decoder(x.reshape(M * B, Dx)).reshape(M, B, -1)
        target = y.reshape(1, B, -1).expand(M, B, -1)
        recon = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1).mean(0)
        # prior network: K Gaussians for each sample of w
        hp = self.prior_body(w.reshape(M * B, self.Dw))
        mu = self.prior_mean(hp).reshape(M, B, K, Dx)
        lv = self.prior_logvar(hp).reshape(M, B, K, Dx)
        # conditional prior: sum_k q(z=k|y) KL(q(x|y) || N(mu_k(w), sigma2_k(w))), averaged over w samples
        kl = 0.5 * (lv - lvx[None, :, None, :] + (lvx.exp()[None, :, None, :]
                    + (mx[None, :, None, :] - mu) ** 2) / lv.exp() - 1.0).sum(-1)
        cond = (qz[None] * kl).sum(-1).mean(0)
        w_prior = 0.5 * (mw ** 2 + lvw.exp() - 1.0 - lvw).sum(-1)
        z_prior = (qz * (log_qz + math.log(K))).sum(-1)
        # consistency violation: entropy of p(z|x,w), p(z|x,w) proportional to N(x | mu_k, sigma2_k)
        logp = -0.5 * (lv + (x[:, :, None, :] - mu) ** 2 / lv.exp() + math.log(2 * math.pi)).sum(-1)
        log_post = F.log_softmax(logp, dim=-1)
        cv = -(log_post.exp() * log_post).sum(-1).mean(0)
        total = (recon + cond + w_prior + self.eta * z_prior + self.alpha * cv).mean()
        if self.balance:    # left out at 0, as gmvae_np.elbo.objective leaves it out
            total = total + self.balance * batch_balance(log_qz)
        return total


def batch_balance(log_qz: torch.Tensor) -> torch.Tensor:
    """KL(p_bar || uniform), p_bar the batch's mean of q(z|y): gmvae_np.elbo.batch_balance for log q(z|y) (B, K)."""
    K = log_qz.shape[-1]
    log_p_bar = torch.logsumexp(log_qz, dim=0) - math.log(log_qz.shape[0])
    return (log_p_bar.exp() * (log_p_bar + math.log(K))).sum()
