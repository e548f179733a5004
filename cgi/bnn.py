"""The Pyro Bayesian MLP of Experiment 2: model and mean-field guide side by side, plus a lean ELBO.

``model`` and ``guide`` are ordinary Pyro programs (priors ``N(0, σ_p²)`` on every weight and bias, a
mean-field Gaussian guide), so Pyro's own machinery — ``Trace_ELBO``, ``TraceMeanField_ELBO``,
``Predictive`` — works on them unchanged, and the tests check our fast objective against it.

Training does not go through ``pyro.infer.SVI``'s per-site tracing: :meth:`BayesianMLP.negative_elbo`
computes the same objective with two tricks that a generic ELBO cannot use here:

* the expected log-likelihood uses *local reparameterisation* (Kingma et al. 2015): instead of sampling a
  weight matrix, sample each pre-activation from its Gaussian, whose mean and variance take two matmuls;
* the KL term is analytic (Pyro's registered ``kl_divergence`` for Normal/Normal), summed over every
  weight and bias and divided by the number of training examples ``N`` — never by the element count — so
  that ``mean NLL + KL / N`` is exactly ``-ELBO / N`` for a minibatch.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions.kl import kl_divergence
from torch import nn


class BayesLinear(nn.Module):
    """A fully connected layer whose weights and biases have a factorised Gaussian posterior.

    Parameters are stored as (loc, log σ). ``scale`` = fan_in^-1/2 is the layer's init scale: locs start
    uniform in [-scale, scale] (PyTorch's nn.Linear default), which is also the unit used by weight points.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        init_log_sigma: float,
        jitter: float,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        self.scale = n_in**-0.5

        def uniform(*shape: int) -> torch.Tensor:
            return (torch.rand(*shape, generator=generator) * 2 - 1) * self.scale

        def log_sigma(*shape: int) -> torch.Tensor:
            return init_log_sigma + jitter * torch.randn(*shape, generator=generator)

        self.w_loc = nn.Parameter(uniform(n_out, n_in))
        self.w_log_sigma = nn.Parameter(log_sigma(n_out, n_in))
        self.b_loc = nn.Parameter(uniform(n_out))
        self.b_log_sigma = nn.Parameter(log_sigma(n_out))

    def forward_lrt(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One draw of the pre-activations under local reparameterisation, in plain autograd.

        Not used for training (that is the fused :class:`_BayesLinearLRT`): it is the readable reference
        the fused layer's values and gradients are tested against.
        """
        mean = F.linear(x, self.w_loc, self.b_loc)
        var = F.linear(x * x, torch.exp(2 * self.w_log_sigma), torch.exp(2 * self.b_log_sigma))
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + var.sqrt() * eps

    def sample_weights(self, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One joint draw of (weight, bias) from the posterior, for the posterior predictive."""
        dev = self.w_loc.device
        w = self.w_loc + self.w_log_sigma.exp() * torch.randn(self.w_loc.shape, generator=generator, device=dev)
        b = self.b_loc + self.b_log_sigma.exp() * torch.randn(self.b_loc.shape, generator=generator, device=dev)
        return w, b

    def posterior(self) -> tuple[dist.Normal, dist.Normal]:
        return (
            dist.Normal(self.w_loc, self.w_log_sigma.exp(), validate_args=False),
            dist.Normal(self.b_loc, self.b_log_sigma.exp(), validate_args=False),
        )


class BayesianMLP(nn.Module):
    """A ReLU MLP with a ``N(0, σ_p²)`` prior on every weight and bias and a mean-field Gaussian guide."""

    def __init__(
        self,
        sizes: list[int],
        *,
        prior_sigma: float = 1.0,
        init_log_sigma: float = -5.0,
        jitter: float = 0.1,
        generator: torch.Generator,
        name: str = "bnn",
    ) -> None:
        super().__init__()
        self.sizes = list(sizes)
        self.prior_sigma = float(prior_sigma)
        self.name = name
        self.layers = nn.ModuleList(
            BayesLinear(a, b, init_log_sigma=init_log_sigma, jitter=jitter, generator=generator)
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )

    # ---- Pyro model and guide -------------------------------------------------------------------
    def prior(self, shape: torch.Size) -> dist.Distribution:
        zero = torch.zeros((), device=self.layers[0].w_loc.device)
        return dist.Normal(zero, zero + self.prior_sigma).expand(shape).to_event(len(shape))

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None, n_total: int | None = None) -> torch.Tensor:
        """p(θ) p(y | x, θ); ``n_total`` scales a minibatch's likelihood up to the whole training set."""
        h = x
        for i, layer in enumerate(self.layers):
            w = pyro.sample(f"{i}.weight", self.prior(layer.w_loc.shape))
            b = pyro.sample(f"{i}.bias", self.prior(layer.b_loc.shape))
            h = F.linear(h, w, b)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        size = n_total or x.shape[0]
        with pyro.plate("data", size=size, subsample=torch.arange(x.shape[0], device=x.device)):
            pyro.sample("y", dist.Categorical(logits=h), obs=y)
        return h

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None, n_total: int | None = None) -> None:
        """q(θ) = Π N(loc, σ²), one factor per weight and bias."""
        pyro.module(self.name, self)
        for i, layer in enumerate(self.layers):
            qw, qb = layer.posterior()
            pyro.sample(f"{i}.weight", qw.to_event(2))
            pyro.sample(f"{i}.bias", qb.to_event(1))

    # ---- the lean objective ---------------------------------------------------------------------
    def kl(self) -> torch.Tensor:
        """KL(q || p) summed over every weight and bias, via Pyro's registered Normal/Normal KL.

        The training loop never computes this value per step (:meth:`training_loss` adds the KL's
        gradient analytically); :meth:`negative_elbo` and the per-epoch log add it back.
        """
        device = self.layers[0].w_loc.device
        prior = dist.Normal(
            torch.zeros((), device=device),
            torch.full((), self.prior_sigma, device=device),
            validate_args=False,
        )
        total = torch.zeros((), device=device)
        for layer in self.layers:
            qw, qb = layer.posterior()
            total = total + kl_divergence(qw, prior).sum() + kl_divergence(qb, prior).sum()
        return total

    def logits_lrt(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        h = x
        for i, layer in enumerate(self.layers):
            h = layer.forward_lrt(h, generator)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h

    def training_loss(
        self, x: torch.Tensor, y: torch.Tensor, n_total: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """The SVI step's loss: its *gradient* is that of -ELBO / N, its *value* is the mean NLL only.

        The likelihood term is one local-reparameterised draw. The KL term's gradient is analytic
        (∂KL/∂μ = μ/σ_p², ∂KL/∂log σ = σ²/σ_p² - 1) and is added inside :class:`_BayesLinearLRT`'s
        backward, so the three reductions over every weight that the KL's *value* needs are skipped in
        the hot loop; :meth:`negative_elbo` adds the value back (the fit loop logs it once per epoch).
        """
        c = 0.5 / self.prior_sigma**2
        scale = 1.0 / n_total
        h = x
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            eps = torch.randn(h.shape[0], layer.n_out, generator=generator, dtype=h.dtype, device=h.device)
            h = _BayesLinearLRT.apply(h, layer.w_loc, layer.w_log_sigma, layer.b_loc, layer.b_log_sigma, eps, c, scale)
            if i < last:
                h = torch.relu(h)
        return F.cross_entropy(h, y)

    def negative_elbo(
        self, x: torch.Tensor, y: torch.Tensor, n_total: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """-ELBO / N for a minibatch (value and gradient): :meth:`training_loss` plus the KL's value / N."""
        return self.training_loss(x, y, n_total, generator) + self.kl().detach() / n_total

    # ---- prediction -----------------------------------------------------------------------------
    @torch.no_grad()
    def predict_proba(
        self, x: torch.Tensor, *, samples: int, generator: torch.Generator | None, chunk: int = 8192
    ) -> torch.Tensor:
        """Posterior predictive p(y | x) averaged over ``samples`` joint weight draws."""
        probs = torch.zeros(x.shape[0], self.sizes[-1], device=x.device)
        for _ in range(samples):
            weights = [layer.sample_weights(generator) for layer in self.layers]
            for start in range(0, x.shape[0], chunk):
                h = x[start : start + chunk]
                for i, (w, b) in enumerate(weights):
                    h = F.linear(h, w, b)
                    if i < len(weights) - 1:
                        h = torch.relu(h)
                probs[start : start + chunk] += torch.softmax(h, dim=-1)
        return probs / samples


class _BayesLinearLRT(torch.autograd.Function):
    """One local-reparameterised layer, ``mean + sqrt(var) * eps``, with ∇(KL / N) folded into its backward.

    ``mean = h μᵀ + μ_b`` and ``var = h² σ²ᵀ + σ_b²`` with σ² = exp(2 log σ). Autograd would spend about a
    dozen passes over every weight-sized tensor on these few lines; here each weight-sized tensor is
    touched by two passes forward (exp, and its doubling) and one backward, and the KL gradient rides in the
    matmuls' ``beta`` terms. Per element, with c = 1/(2σ_p²) and s = 1/N: KL/N = s·[c(σ² + μ²) - log σ] +
    const, so ∂/∂μ = 2cs·μ and ∂/∂log σ = 2σ²(∂L/∂σ² + cs) - s. ``tests/test_bnn.py`` checks the gradient
    against autograd on :meth:`BayesLinear.forward_lrt` plus Pyro's KL.
    """

    @staticmethod
    def forward(ctx, h, w_loc, w_log_sigma, b_loc, b_log_sigma, eps, c: float, scale: float):  # type: ignore[override]
        w_var = w_log_sigma.mul(2).exp_()
        b_var = b_log_sigma.mul(2).exp_()
        h_sq = h * h
        std = torch.addmm(b_var, h_sq, w_var.t()).sqrt_()
        out = torch.addmm(b_loc, h, w_loc.t()).addcmul_(std, eps)
        r = eps.div(std)  # 2 ∂out/∂var (the factor 2 of ∂σ²/∂log σ is folded in here)
        ctx.save_for_backward(h, h_sq, w_loc, w_var, b_loc, b_var, r)
        ctx.c, ctx.scale = c, scale
        return out

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        h, h_sq, w_loc, w_var, b_loc, b_var, r = ctx.saved_tensors
        cs, s = ctx.c * ctx.scale, ctx.scale
        g_var2 = g * r  # 2 ∂L/∂var
        g_h = torch.addcmul(g @ w_loc, g_var2 @ w_var, h) if ctx.needs_input_grad[0] else None
        g_w_loc = torch.addmm(w_loc, g.t(), h, beta=2 * cs)
        g_b_loc = torch.add(g.sum(0), b_loc, alpha=2 * cs)
        # ∂/∂log σ = σ² (2 ∂L/∂σ² + 2cs) - s, computed in place on the fresh matmul output
        g_w_ls = (g_var2.t() @ h_sq).add_(2 * cs).mul_(w_var).sub_(s)
        g_b_ls = g_var2.sum(0).add_(2 * cs).mul_(b_var).sub_(s)
        return g_h, g_w_loc, g_w_ls, g_b_loc, g_b_ls, None, None, None
