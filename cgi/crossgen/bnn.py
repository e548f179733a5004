"""The Pyro Bayesian MLP of Experiment 2: model and mean-field guide side by side, plus a lean ELBO.

``model`` and ``guide`` are ordinary Pyro programs (priors ``N(0, σ_p²)`` on every weight and bias, a
mean-field Gaussian guide), so Pyro's own machinery — ``Trace_ELBO``, ``TraceMeanField_ELBO``,
``Predictive`` — works on them unchanged, and the tests check our fast objective against it.

Training does not go through ``pyro.infer.SVI``'s per-site tracing: :meth:`BayesianMLP.negative_elbo`
states the same objective with two tricks that a generic ELBO cannot use here, and :class:`ElboGradient`
computes its gradient without an autograd graph:

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

BF16 = torch.bfloat16


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

        Not used for training (that is :class:`ElboGradient`): it is the readable reference that the
        written-out gradient is tested against.
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

        The training loop never computes this value per step (:class:`ElboGradient` adds the KL's
        gradient analytically); :meth:`negative_elbo` and the per-epoch log use it.
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

    def negative_elbo(
        self, x: torch.Tensor, y: torch.Tensor, n_total: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """-ELBO / N for a minibatch in plain autograd: one local-reparameterised draw plus KL / N.

        The readable statement of the objective. Training uses :class:`ElboGradient`, which computes the
        same value and gradient without building a graph; the tests hold the two to each other.
        """
        return F.cross_entropy(self.logits_lrt(x, generator), y) + self.kl() / n_total

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


class _Workspace:
    """Activation-sized buffers for one batch size, reused every step (no allocation in the hot loop).

    ``bf16`` adds the bfloat16 copies the bf16 step feeds its matmuls (each input cast once per step, and
    reused by both matmuls that read it) and the bf16 matmul outputs; the fp32 step allocates none of them.
    """

    def __init__(
        self,
        batch: int,
        sizes: list[int],
        x_dtype: torch.dtype,
        y_dtype: torch.dtype,
        device: torch.device,
        *,
        bf16: bool = False,
    ):
        def buf(n: int, dtype: torch.dtype = x_dtype) -> torch.Tensor:
            return torch.empty(batch, n, device=device, dtype=dtype)

        self.x = buf(sizes[0])
        self.y = torch.empty(batch, device=device, dtype=y_dtype)
        if not bf16:
            self.h_sq = [buf(n) for n in sizes[:-1]]
        self.out = [buf(n) for n in sizes[1:]]
        self.std = [buf(n) for n in sizes[1:]]
        self.eps = [buf(n) for n in sizes[1:]]
        # input gradients, needed for every layer but the first (whose input is the data)
        self.g_h = {i: buf(n) for i, n in enumerate(sizes[:-1]) if i > 0}
        if not bf16:
            self.g_h_var = {i: buf(n) for i, n in enumerate(sizes[:-1]) if i > 0}
        self.g_sum = [torch.empty(n, device=device, dtype=x_dtype) for n in sizes[1:]]
        self.minus_one = torch.full((batch, 1), -1.0, device=device, dtype=x_dtype)
        if not bf16:
            return
        self.h16 = [buf(n, BF16) for n in sizes[:-1]]  # each layer's input, cast once
        self.h_sq16 = [buf(n, BF16) for n in sizes[:-1]]  # and its square (fp32 product, rounded once)
        self.mm16 = [buf(n, BF16) for n in sizes[1:]]  # forward matmul output (mean, then variance)
        self.g16 = [buf(n, BF16) for n in sizes[1:]]  # ∂L/∂out and 2 ∂L/∂var, cast once each
        self.g_var16 = [buf(n, BF16) for n in sizes[1:]]
        self.g_h16 = {i: buf(n, BF16) for i, n in enumerate(sizes[:-1]) if i > 0}


class ElboGradient:
    """One SVI step's gradient of -ELBO / N, written out: LRT forward, backward and KL gradient by hand.

    ``step(x, y, idx, n_total, generator)`` takes the minibatch ``x[idx], y[idx]``, draws the local
    reparameterisation noise (layer by layer, in the same order as :meth:`BayesianMLP.logits_lrt`), writes
    ∇(-ELBO / N) into every parameter's ``.grad`` (overwriting it) and returns the minibatch's mean NLL.

    Why not autograd: per layer the maths is ``mean = h μᵀ + μ_b``, ``var = h² σ²ᵀ + σ_b²`` (σ² = exp 2 log σ),
    ``out = mean + √var · ε``; value and gradient take six matmuls (four on the input layer) and a few passes
    over weight-sized tensors, and the KL's gradient (∂/∂μ = 2cs·μ, ∂/∂log σ = 2σ²(∂L/∂σ² + cs) - s with
    c = 1/(2σ_p²), s = 1/N) rides in those passes. Autograd spends about a dozen weight-sized passes on the
    same lines and allocates every intermediate; here the weight-sized buffers (σ², the gradients) and the
    activation-sized ones (per batch size) are allocated once and reused. ``tests/test_bnn.py`` checks the
    value and gradient against autograd on :meth:`BayesianMLP.negative_elbo` and against finite differences.

    ``precision="bf16"`` runs the same step with bf16 matmuls (:meth:`_step_bf16`) where the CPU has bf16
    matrix units; ``"fp32"`` (the default) is bit-for-bit the step that every stored result was trained with.
    """

    def __init__(self, bnn: BayesianMLP, precision: str = "fp32", kl_weight: float = 1.0) -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision={precision!r} must be fp32 or bf16")
        self.bnn = bnn
        self.kl_weight = kl_weight
        self.bf16 = precision == "bf16"
        self._w_var = [torch.empty_like(layer.w_loc) for layer in bnn.layers]
        self._b_var = [torch.empty_like(layer.b_loc) for layer in bnn.layers]
        if self.bf16:  # per step: μ and σ² cast once, and one buffer for the two weight-gradient matmuls
            self._w16 = [torch.empty_like(layer.w_loc, dtype=BF16) for layer in bnn.layers]
            self._w_var16 = [torch.empty_like(layer.w_loc, dtype=BF16) for layer in bnn.layers]
            self._g_w16 = [torch.empty_like(layer.w_loc, dtype=BF16) for layer in bnn.layers]
        self._workspaces: dict[int, _Workspace] = {}
        for p in bnn.parameters():
            p.grad = torch.zeros_like(p)

    def _workspace(self, batch: int, x: torch.Tensor, y: torch.Tensor) -> _Workspace:
        ws = self._workspaces.get(batch)
        if ws is None:
            ws = _Workspace(batch, self.bnn.sizes, x.dtype, y.dtype, x.device, bf16=self.bf16)
            self._workspaces[batch] = ws
        return ws

    def step(
        self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, n_total: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        if self.bf16:
            return self._step_bf16(x, y, idx, n_total, generator)
        return self._step_fp32(x, y, idx, n_total, generator)

    @torch.no_grad()
    def _step_fp32(
        self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, n_total: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        layers = self.bnn.layers
        last = len(layers) - 1
        batch = idx.shape[0]
        ws = self._workspace(batch, x, y)
        xb = torch.index_select(x, 0, idx, out=ws.x)
        yb = torch.index_select(y, 0, idx, out=ws.y)
        s = self.kl_weight / n_total  # the KL's weight per example (1: the ELBO itself)
        cs2 = s / self.bnn.prior_sigma**2  # 2cs

        h = xb
        for i, layer in enumerate(layers):
            eps = torch.randn(batch, layer.n_out, generator=generator, out=ws.eps[i])
            w_var = torch.mul(layer.w_log_sigma, 2, out=self._w_var[i]).exp_()
            b_var = torch.mul(layer.b_log_sigma, 2, out=self._b_var[i]).exp_()
            h_sq = torch.mul(h, h, out=ws.h_sq[i])
            std = torch.addmm(b_var, h_sq, w_var.t(), out=ws.std[i]).sqrt_()
            out = torch.addmm(layer.b_loc, h, layer.w_loc.t(), out=ws.out[i]).addcmul_(std, eps)
            eps.div_(std)  # ε/√var = 2 ∂out/∂var: the factor 2 of ∂σ²/∂log σ is folded in here
            if i < last:
                out.clamp_min_(0)
            h = out

        # cross-entropy: value from log-softmax, gradient (softmax - onehot) / batch
        log_p = torch.log_softmax(h, 1)
        loss = -log_p.gather(1, yb[:, None]).mean()
        g = log_p.exp_().scatter_add_(1, yb[:, None], ws.minus_one).div_(batch)

        for i in range(last, -1, -1):
            layer = layers[i]
            h = xb if i == 0 else ws.out[i - 1]
            w_var, b_var = self._w_var[i], self._b_var[i]
            g_var2 = ws.eps[i].mul_(g)  # 2 ∂L/∂var
            if i > 0:  # ∂L/∂h = g μ + 2h ⊙ (∂L/∂var σ²), through the ReLU (h > 0 ⇔ its input > 0)
                g_h = torch.mm(g, layer.w_loc, out=ws.g_h[i])
                g_h.addcmul_(torch.mm(g_var2, w_var, out=ws.g_h_var[i]), h).mul_(h > 0)
            torch.addmm(layer.w_loc, g.t(), h, beta=cs2, out=layer.w_loc.grad)
            torch.add(torch.sum(g, 0, out=ws.g_sum[i]), layer.b_loc, alpha=cs2, out=layer.b_loc.grad)
            # ∂/∂log σ = σ² (2 ∂L/∂σ² + 2cs) - s
            torch.mm(g_var2.t(), ws.h_sq[i], out=layer.w_log_sigma.grad).add_(cs2).mul_(w_var).sub_(s)
            torch.sum(g_var2, 0, out=layer.b_log_sigma.grad).add_(cs2).mul_(b_var).sub_(s)
            if i > 0:
                g = g_h
        return loss

    @torch.no_grad()
    def _step_bf16(
        self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, n_total: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """:meth:`step` with bf16 matmuls (fp32 accumulation); everything else stays fp32.

        The same lines as the fp32 step, except that each matmul reads bf16 copies of its operands and
        writes a bf16 product that the fp32 pass after it (bias, √, the KL terms) reads directly. Every
        operand is cast once per step and shared by the matmuls that read it: the layer input and its
        square, μ and σ² (forward and input gradient), ∂L/∂out and 2 ∂L/∂var (all three backward matmuls).
        Parameters, Adam's state, σ² in the log σ gradient, the noise, the softmax and the loss are fp32.
        """
        layers = self.bnn.layers
        last = len(layers) - 1
        batch = idx.shape[0]
        ws = self._workspace(batch, x, y)
        xb = torch.index_select(x, 0, idx, out=ws.x)
        yb = torch.index_select(y, 0, idx, out=ws.y)
        s = self.kl_weight / n_total  # the KL's weight per example (1: the ELBO itself)
        cs2 = s / self.bnn.prior_sigma**2  # 2cs

        h = xb
        for i, layer in enumerate(layers):
            eps = torch.randn(batch, layer.n_out, generator=generator, out=ws.eps[i])
            w_var = torch.mul(layer.w_log_sigma, 2, out=self._w_var[i]).exp_()
            b_var = torch.mul(layer.b_log_sigma, 2, out=self._b_var[i]).exp_()
            w16, w_var16 = self._w16[i].copy_(layer.w_loc), self._w_var16[i].copy_(w_var)
            h16 = ws.h16[i].copy_(h)
            h_sq16 = torch.mul(h, h, out=ws.h_sq16[i])
            var16 = torch.mm(h_sq16, w_var16.t(), out=ws.mm16[i])
            std = torch.add(b_var, var16, out=ws.std[i]).sqrt_()
            mean16 = torch.mm(h16, w16.t(), out=ws.mm16[i])
            out = torch.add(layer.b_loc, mean16, out=ws.out[i]).addcmul_(std, eps)
            eps.div_(std)  # ε/√var = 2 ∂out/∂var
            if i < last:
                out.clamp_min_(0)
            h = out

        log_p = torch.log_softmax(h, 1)
        loss = -log_p.gather(1, yb[:, None]).mean()
        g = log_p.exp_().scatter_add_(1, yb[:, None], ws.minus_one).div_(batch)

        for i in range(last, -1, -1):
            layer = layers[i]
            w_var = self._w_var[i]
            g_var2 = ws.eps[i].mul_(g)  # 2 ∂L/∂var
            g16, g_var16 = ws.g16[i].copy_(g), ws.g_var16[i].copy_(g_var2)
            if i > 0:  # ∂L/∂h = g μ + 2h ⊙ (∂L/∂var σ²), through the ReLU
                h = ws.out[i - 1]
                g_h = ws.g_h[i].copy_(torch.mm(g16, self._w16[i], out=ws.g_h16[i]))
                g_h.addcmul_(torch.mm(g_var16, self._w_var16[i], out=ws.g_h16[i]), h).mul_(h > 0)
            g_w16 = torch.mm(g16.t(), ws.h16[i], out=self._g_w16[i])
            torch.add(g_w16, layer.w_loc, alpha=cs2, out=layer.w_loc.grad)
            torch.add(torch.sum(g, 0, out=ws.g_sum[i]), layer.b_loc, alpha=cs2, out=layer.b_loc.grad)
            g_w16 = torch.mm(g_var16.t(), ws.h_sq16[i], out=self._g_w16[i])
            torch.add(g_w16, cs2, out=layer.w_log_sigma.grad).mul_(w_var).sub_(s)
            torch.sum(g_var2, 0, out=layer.b_log_sigma.grad).add_(cs2).mul_(self._b_var[i]).sub_(s)
            if i > 0:
                g = g_h
        return loss
