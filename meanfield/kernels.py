r"""Gaussian-input kernels K(θ, θ′) = E[σ(w·x + b) σ(w′·x + b′)] and their gradients.

For x ~ N(0, I_d) the pre-activations u = w·x + b and u′ = w′·x + b′ are jointly
Gaussian with means b, b′, variances s² = ‖w‖², s′² = ‖w′‖² and covariance w·w′, so every
population quantity of a two-layer network is a double sum of K, in any dimension d
(the feature kernel is E[φ(θ,x) φ(θ′,x)] = a a′ K(θ, θ′)).  A Gram block only needs the
matrix w·w′ (one matmul): no array of shape (m, k, d) is formed.

**ReLU.**  Write u = b + s z, u′ = b′ + s′ z′ with standard (z, z′) of correlation
ρ = w·w′/(s s′), and put ρ̄ = √(1 − ρ²), α = b/s, α′ = b′/s′,
β = (α − ρα′)/ρ̄, β′ = (α′ − ρα)/ρ̄ and Φ₂ = Φ₂(α, α′; ρ) = P(u > 0, u′ > 0).  Gaussian
integration by parts (Stein's lemma E[z g] = E[∂_z g] + ρ E[∂_{z′} g]) gives
E[z 1{u>0} 1{u′>0}] = φ(α)Φ(β′) + ρ φ(α′)Φ(β) and E[z z′ 1 1] = ρΦ₂ + …, whence

.. math::

    \mathbb E[\mathrm{relu}(u)\,\mathrm{relu}(u')] = (w\cdot w' + b b')\,\Phi_2
    + b\, s' \varphi(\alpha')\,\Phi(\beta) + b'\, s\, \varphi(\alpha)\,\Phi(\beta')
    + s s' \bar\rho\, \varphi(\alpha)\, \varphi(\beta')

(the last term is s s′ (1 − ρ²) φ₂(α, α′; ρ)).  Stein's lemma on x gives the gradient
∇_w E[relu(u) relu(u′)] = E[1{u>0} relu(u′) x] = A w + B w′ with

.. math::

    A = \frac{\varphi(\alpha)}{s}\,\mathbb E[\mathrm{relu}(u') \mid u = 0]
      = \frac{\varphi(\alpha)}{s}\, s'\big((\alpha' - \rho\alpha)\Phi(\beta')
        + \bar\rho\,\varphi(\beta')\big), \qquad B = \Phi_2,

    \partial_b\, \mathbb E[\mathrm{relu}(u)\,\mathrm{relu}(u')] =
    \mathbb E[1\{u>0\}\,\mathrm{relu}(u')] = b'\,\Phi_2
    + s'\big(\varphi(\alpha')\Phi(\beta) + \rho\,\varphi(\alpha)\Phi(\beta')\big).

With b = b′ = 0, Φ₂ = ¼ + arcsin(ρ)/(2π) and K is the arc-cosine kernel of degree 1
(Cho & Saul 2009) halved: s s′ (sin ϑ + (π − ϑ) cos ϑ)/(2π), ϑ = arccos ρ.

**erf.**  erf(u) = 2Φ(√2 u) − 1 and E[Φ(√2u) Φ(√2u′)] = P(Y ≤ √2u, Y′ ≤ √2u′) for
independent standard Y, Y′, an orthant probability of the Gaussian pair
(Y − √2 s z, Y′ − √2 s′ z′).  With D = 1 + 2s², h = √2 b/√D, h′ = √2 b′/√D′ and
r = 2 w·w′/√(D D′):

.. math::

    \mathbb E[\mathrm{erf}(u)\,\mathrm{erf}(u')] = 4\,\Phi_2(h, h'; r) - 2\Phi(h)
    - 2\Phi(h') + 1, \qquad
    \partial_b = \frac{2\sqrt2\,\varphi(h)}{\sqrt D}\,\big(2\Phi(\beta') - 1\big),

    \nabla_w = \Big(-\frac{4h\varphi(h)}{D}\big(2\Phi(\beta') - 1\big)
    - \frac{8 r\varphi_2}{D}\Big) w + \frac{8\varphi_2}{\sqrt{DD'}}\, w',

with β′ = (h′ − r h)/r̄, φ₂ = φ₂(h, h′; r); b = b′ = 0 is Williams' (1997) arcsine
kernel (2/π) arcsin r.  |r| < 1 always (r̄ √(DD′) = √(1 + 2s² + 2s′² + 4(s²s′² − (w·w′)²))).

Φ₂ (:func:`~meanfield.bivariate_normal.bivariate_normal_cdf`, in
:mod:`meanfield.bivariate_normal` with the blocks) uses Owen's T function (Owen 1956)
through :func:`scipy.special.owens_t`:
Φ₂(h, k; ρ) = ½Φ(h) + ½Φ(k) − T(h, β′/h) − T(k, β/k) − δ.  In a symmetric block the
pair (j, i) supplies T(k, β/k) of the pair (i, j), so T is evaluated once per ordered
pair.  Blocks are computed in cache-sized row chunks, on worker threads for large ones.
Degenerate cases are exact limits with no NaN or warning: w = 0 makes u ≡ b constant
(independent of u′, with 1{u ≥ 0} = 1{b ≥ 0}, the convention σ′(0) = 1 of
:mod:`meanfield.activations`); |ρ| = 1 gives Φ₂(α, α′; 1) = Φ(min(α, α′)),
Φ₂(α, α′; −1) = (Φ(α) − Φ(−α′))₊ and Φ(β) → 1, 0 or ½; |ρ| within 2⁻⁴⁸ of 1 (rounding
of w·w′ for parallel weights) is snapped to ±1.

**Other activations** (sigmoid, tanh, mixed pairs) use Gauss–Hermite quadrature on the
bivariate normal (:mod:`meanfield.quadrature`); see :func:`kernel_block`.

References
----------
Y. Cho, L. Saul. Kernel methods for deep learning. NeurIPS 2009.
C. Williams. Computing with infinite networks. NeurIPS 1997.
D. B. Owen. Tables for computing bivariate normal probabilities. Ann. Math. Stat. 1956.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from meanfield._validation import as_float_array, check_int
from meanfield.activations import ACTIVATIONS, Activation, get_activation
from meanfield.bivariate_normal import _BvnBlock, _Side
from meanfield.bivariate_normal import bivariate_normal_cdf as bivariate_normal_cdf
from meanfield.network import check_theta
from meanfield.quadrature import DEFAULT_NODES, _quadrature, _quadrature_mean
from meanfield.quadrature import gauss_hermite as gauss_hermite

# ``DEFAULT_NODES``, ``bivariate_normal_cdf`` and ``gauss_hermite`` are also importable from
# here; they are documented in :mod:`meanfield.quadrature` and :mod:`meanfield.bivariate_normal`.
__all__ = [
    "KernelBlock",
    "arccos_kernel",
    "default_workers",
    "erf_kernel",
    "gaussian_kernel",
    "gaussian_kernel_grad",
    "gaussian_mean",
    "gaussian_mean_grad",
    "kernel_block",
    "relu_kernel",
]

Array = NDArray[np.floating]
Method = Literal["auto", "closed", "quadrature"]

_RELU = ACTIVATIONS["relu"]
_ERF = ACTIVATIONS["erf"]



@dataclass(frozen=True)
class KernelBlock:
    r"""A block K[i, j] = E[σ(uᵢ) σ′(u′ⱼ)] with its gradient in (wᵢ, bᵢ).

    The gradient with respect to the first argument always has the form

    .. math::

        \nabla_{w_i} K_{ij} = A_{ij}\, w_i + B_{ij}\, w'_j, \qquad
        \partial_{b_i} K_{ij} = G_{ij},

    because E[σ′(u) σ(u′) x] lies in the span of w and w′ (the component of x orthogonal
    to both is centred and independent of (u, u′)).  Keeping the scalar blocks A, B, G
    instead of an (m, k, d) array turns contractions into matmuls.

    Attributes
    ----------
    value : ndarray, shape (..., m, k)
        K.
    coef_w, coef_wp, grad_b : ndarray, shape (..., m, k), or None
        A, B and G (``None`` when computed with ``grad=False``).
    """

    value: Array
    coef_w: Array | None = None
    coef_wp: Array | None = None
    grad_b: Array | None = None

    def _grads(self) -> tuple[Array, Array, Array]:
        if self.coef_w is None or self.coef_wp is None or self.grad_b is None:
            raise ValueError("this KernelBlock was computed with grad=False")
        return self.coef_w, self.coef_wp, self.grad_b

    def dense_grad(self, w: ArrayLike, w_prime: ArrayLike) -> Array:
        r"""Form the full gradient ∇_{(wᵢ, bᵢ)} K[i, j] = (A wᵢ + B w′ⱼ, G).

        .. math:: \nabla_{(w_i, b_i)} K_{ij} = (A_{ij} w_i + B_{ij} w'_j,\ G_{ij})

        Parameters
        ----------
        w : array_like, shape (..., m, d)
            Weights of the first argument.
        w_prime : array_like, shape (..., k, d)
            Weights of the second argument.

        Returns
        -------
        ndarray, shape (..., m, k, d+1)
        """
        a, bb, g = self._grads()
        ww, wp = np.asarray(w, dtype=float), np.asarray(w_prime, dtype=float)
        gw = a[..., None] * ww[..., :, None, :] + bb[..., None] * wp[..., None, :, :]
        return np.concatenate([gw, g[..., None]], axis=-1)

    def contract(self, coef: ArrayLike, w: ArrayLike, w_prime: ArrayLike) -> tuple[Array, Array]:
        r"""Contract with coefficients: Σⱼ cⱼ K[i, j] and Σⱼ cⱼ ∇_{(wᵢ, bᵢ)} K[i, j].

        .. math::

            \sum_j c_j \nabla_{w_i} K_{ij} = \Big(\sum_j A_{ij} c_j\Big) w_i
            + \sum_j B_{ij}\, c_j w'_j

        Parameters
        ----------
        coef : array_like, shape (..., k)
            Coefficients cⱼ (e.g. pⱼ aⱼ).
        w, w_prime : array_like, shapes (..., m, d) and (..., k, d)
            Weights of both arguments.

        Returns
        -------
        value : ndarray, shape (..., m)
        grad : ndarray, shape (..., m, d+1)
        """
        cc = np.asarray(coef, dtype=float)[..., :, None]
        a, bb, g = self._grads()
        gw = (a @ cc) * np.asarray(w, dtype=float) + bb @ (cc * np.asarray(w_prime, dtype=float))
        return (self.value @ cc)[..., 0], np.concatenate([gw, g @ cc], axis=-1)


def _split(theta: ArrayLike, name: str) -> tuple[Array, Array]:
    th = check_theta(theta, name=name)
    return th[..., 1:-1], th[..., -1]


def relu_kernel(theta: ArrayLike, theta_prime: ArrayLike | None = None) -> Array:
    r"""Compute the ReLU kernel E[relu(w·x + b) relu(w′·x + b′)], x ~ N(0, I_d), exactly.

    .. math::

        K = (w\cdot w' + bb')\,\Phi_2(\alpha, \alpha'; \rho)
        + b s'\varphi(\alpha')\Phi(\beta) + b' s\varphi(\alpha)\Phi(\beta')
        + s s'\bar\rho\,\varphi(\alpha)\varphi(\beta')

    (notation of the module docstring); 1-homogeneous in (w, b) and in (w′, b′).

    Parameters
    ----------
    theta : array_like, shape (..., m, d+2)
        First particles (only w and b are used).
    theta_prime : array_like, shape (..., k, d+2), optional
        Second particles; default ``theta`` (a symmetric Gram matrix).

    Returns
    -------
    ndarray, shape (..., m, k)
    """
    return gaussian_kernel(theta, theta_prime, activation="relu", method="closed")


def _bias_free(w: ArrayLike, name: str) -> Array:
    ww = as_float_array(name, w, min_ndim=2)
    zero = np.zeros((*ww.shape[:-1], 1))
    return np.concatenate([zero, ww, zero], axis=-1)


def arccos_kernel(w: ArrayLike, w_prime: ArrayLike | None = None) -> Array:
    r"""Compute the bias-free ReLU kernel: Cho & Saul's (2009) arc-cosine kernel k₁, halved.

    .. math::

        \mathbb E[\mathrm{relu}(w\cdot x)\,\mathrm{relu}(w'\cdot x)]
        = \frac{\|w\|\|w'\|}{2\pi}\big(\sin\vartheta + (\pi - \vartheta)\cos\vartheta\big),
        \qquad \cos\vartheta = \frac{w\cdot w'}{\|w\|\|w'\|}

    Parameters
    ----------
    w : array_like, shape (..., m, d)
        Weights.
    w_prime : array_like, shape (..., k, d), optional
        Second weights; default ``w``.

    Returns
    -------
    ndarray, shape (..., m, k)
    """
    wp = None if w_prime is None else _bias_free(w_prime, "w_prime")
    return gaussian_kernel(_bias_free(w, "w"), wp, activation="relu", method="closed")


def erf_kernel(w: ArrayLike, w_prime: ArrayLike | None = None) -> Array:
    r"""Compute Williams' (1997) arcsine kernel E[erf(w·x) erf(w′·x)], x ~ N(0, I_d).

    .. math::

        \mathbb E[\mathrm{erf}(w\cdot x)\,\mathrm{erf}(w'\cdot x)] = \frac2\pi
        \arcsin\frac{2\, w\cdot w'}{\sqrt{(1 + 2\|w\|^2)(1 + 2\|w'\|^2)}}

    Parameters
    ----------
    w : array_like, shape (..., m, d)
        Weights (no bias).
    w_prime : array_like, shape (..., k, d), optional
        Second weights; default ``w``.

    Returns
    -------
    ndarray, shape (..., m, k)
    """
    wp = None if w_prime is None else _bias_free(w_prime, "w_prime")
    return gaussian_kernel(_bias_free(w, "w"), wp, activation="erf", method="closed")


# -- dispatch -----------------------------------------------------------------------------
def default_workers() -> int:
    """Return the default thread count: the CPUs available to this process, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def _check_method(method: str) -> None:
    if method not in ("auto", "closed", "quadrature"):
        raise ValueError(f"method must be 'auto', 'closed' or 'quadrature'; got {method!r}")


def kernel_block(
    theta: ArrayLike,
    theta_prime: ArrayLike | None = None,
    *,
    activation: str | Activation = "relu",
    activation_prime: str | Activation | None = None,
    method: Method = "auto",
    n_nodes: int = DEFAULT_NODES,
    grad: bool = True,
    workers: int | None = None,
) -> KernelBlock:
    r"""Compute the block K[i, j] = E[σ(wᵢ·x + bᵢ) σ′(w′ⱼ·x + b′ⱼ)], x ~ N(0, I_d).

    .. math::

        K_{ij} = \mathbb E[\sigma(u_i)\,\sigma'(u'_j)], \qquad
        \nabla_{w_i} K_{ij} = A_{ij} w_i + B_{ij} w'_j, \quad \partial_{b_i} K_{ij} = G_{ij}

    ReLU and erf pairs use the closed forms of the module docstring; anything else (or
    ``method="quadrature"``) Gauss–Hermite quadrature: with z₁, z₂ independent,
    u = b + s z₁, u′ = b′ + s′(ρ z₁ + ρ̄ z₂) and the nodes (tₖ, ωₖ) of
    :func:`~meanfield.quadrature.gauss_hermite`,

    .. math::

        K \approx \sum_{k,l} \omega_k\omega_l\, \sigma(b + s t_k)\,
        \sigma'\big(b' + s'(\rho t_k + \bar\rho t_l)\big),

    and with the same rule G = E[σ̇(u)σ′(u′)], D = E[σ̇(u)σ̇′(u′)], M = E[σ̇(u)σ′(u′)z₁];
    Stein's lemma in z₂ gives A = (M − ρ s′ D)/s, B = D (A = 0 when w = 0).

    Parameters
    ----------
    theta : array_like, shape (..., m, d+2)
        First particles (rows ``[a, w, b]``; ``a`` is ignored).
    theta_prime : array_like, shape (..., k, d+2), optional
        Second particles; default ``theta`` (a symmetric block, cheaper).
    activation, activation_prime : str or Activation
        σ and σ′ (default σ′ = σ).
    method : {"auto", "closed", "quadrature"}
        ``"closed"`` raises if σ, σ′ are not both ReLU or both erf.
    n_nodes : int, default 32
        Quadrature nodes per axis (n² per pair).
    grad : bool, default True
        Also compute A, B, G.
    workers : int, optional
        Threads for the closed forms on large blocks (numpy and scipy ufuncs release the
        GIL); default :func:`default_workers`.  The result does not depend on it.

    Returns
    -------
    KernelBlock
        Blocks of shape ``(..., m, k)`` (leading axes broadcast).

    Raises
    ------
    ValueError
        Unknown ``method``, no closed form for ``method="closed"``, or different d.

    Notes
    -----
    Quadrature error: for σ analytic in the strip |Im u| < τ (tanh τ = π/2, sigmoid τ = π,
    erf entire) it decays geometrically in √n, about like exp(−2(τ/s)√(2n)), so larger
    weights s = ‖w‖ need more nodes; for ReLU it decays only algebraically.  Measured
    maximal relative errors of K (of ∇K) over 900 random pairs with ‖w‖ = 1 at n = 16, 32,
    64: sigmoid 2e-5 (5e-4), 5e-7 (4e-6), 4e-10 (2e-8); tanh 5e-3 (6e-2), 1e-3 (3e-3),
    3e-5 (4e-4).  With ‖w‖ = 2: sigmoid 4e-3, 4e-4, 1e-5; tanh 8e-2, 2e-2, 4e-3.  ReLU
    (only to check the closed form): 1e-2, 3e-3, 2e-3 (∇K: 10%).  Cost O(m k n²).
    """
    act = get_activation(activation)
    act2 = act if activation_prime is None else get_activation(activation_prime)
    _check_method(method)
    n = check_int("n_nodes", n_nodes)
    nw = default_workers() if workers is None else check_int("workers", workers)
    w, b = _split(theta, "theta")
    same = theta_prime is None
    wp, bp = (w, b) if theta_prime is None else _split(theta_prime, "theta_prime")
    if w.shape[-1] != wp.shape[-1]:
        raise ValueError(
            f"theta and theta_prime must have the same input dimension; got d={w.shape[-1]} "
            f"and d={wp.shape[-1]}"
        )
    kind = next((a.name for a in (_RELU, _ERF) if act == a and act2 == a), None)
    if method == "quadrature" or kind is None:
        if method == "closed":
            raise ValueError(
                f"no closed form for the activations ({act.name}, {act2.name}): closed forms "
                "exist for relu and erf pairs"
            )
        return KernelBlock(*_quadrature(w, b, wp, bp, act, act2, n, grad=grad))
    return KernelBlock(*_BvnBlock(kind, w, b, wp, bp, grad=grad, same=same).run(nw))


def gaussian_kernel(
    theta: ArrayLike,
    theta_prime: ArrayLike | None = None,
    *,
    activation: str | Activation = "relu",
    method: Method = "auto",
    n_nodes: int = DEFAULT_NODES,
) -> Array:
    r"""Compute kernel values K[i, j] = E[σ(uᵢ) σ(u′ⱼ)] (see :func:`kernel_block`).

    .. math:: K_{ij} = \mathbb E_{x\sim\mathcal N(0, I_d)}\big[\sigma(w_i\cdot x + b_i)\,
              \sigma(w'_j\cdot x + b'_j)\big]

    The feature kernel is E[φ(θᵢ, x) φ(θ′ⱼ, x)] = aᵢ a′ⱼ Kᵢⱼ.

    Parameters
    ----------
    theta, theta_prime : array_like, shapes (..., m, d+2) and (..., k, d+2)
        Particles (``theta_prime`` defaults to ``theta``).
    activation : str or Activation, default "relu"
        σ.
    method : {"auto", "closed", "quadrature"}
        See :func:`kernel_block`.
    n_nodes : int, default 32
        Quadrature nodes per axis.

    Returns
    -------
    ndarray, shape (..., m, k)
    """
    return kernel_block(
        theta, theta_prime, activation=activation, method=method, n_nodes=n_nodes, grad=False
    ).value


def gaussian_kernel_grad(
    theta: ArrayLike,
    theta_prime: ArrayLike | None = None,
    *,
    activation: str | Activation = "relu",
    method: Method = "auto",
    n_nodes: int = DEFAULT_NODES,
) -> Array:
    r"""Compute ∇_{(wᵢ, bᵢ)} K[i, j], the gradient in the first argument, as a dense array.

    .. math:: \nabla_{(w_i, b_i)} K_{ij} = \big(\mathbb E[\sigma'(u_i)\sigma(u'_j)\,x],\
              \mathbb E[\sigma'(u_i)\sigma(u'_j)]\big) = (A_{ij} w_i + B_{ij} w'_j,\ G_{ij})

    For small blocks and tests; estimators contract the blocks with
    :meth:`KernelBlock.contract` instead.

    Parameters
    ----------
    theta, theta_prime : array_like, shapes (..., m, d+2) and (..., k, d+2)
        Particles (``theta_prime`` defaults to ``theta``).
    activation : str or Activation, default "relu"
        σ.
    method : {"auto", "closed", "quadrature"}
        See :func:`kernel_block`.
    n_nodes : int, default 32
        Quadrature nodes per axis.

    Returns
    -------
    ndarray, shape (..., m, k, d+1)
    """
    blk = kernel_block(theta, theta_prime, activation=activation, method=method, n_nodes=n_nodes)
    w = _split(theta, "theta")[0]
    wp = w if theta_prime is None else check_theta(theta_prime, name="theta_prime")[..., 1:-1]
    return blk.dense_grad(w, wp)


# -- means --------------------------------------------------------------------------------
def _mean_and_grad(
    theta: ArrayLike, activation: str | Activation, method: Method, n_nodes: int
) -> tuple[Array, Array]:
    act = get_activation(activation)
    _check_method(method)
    n = check_int("n_nodes", n_nodes)
    w, b = _split(theta, "theta")
    if method != "quadrature" and act in (_RELU, _ERF):
        sd = _Side(w, b, act.name)
        if act == _RELU:
            return sd.mean, np.concatenate([sd.dos[..., None] * w, sd.prob[..., None]], -1)
        d_b = 2.0 * sd.scale * sd.ph  # ∂_b erf(b/√D) = 2√2 φ(h)/√D
        d_w = -2.0 * b * d_b / sd.dd  # ∂_w erf(b/√D) = −2b (∂_b)/D · w
        return 2.0 * sd.cdf - 1.0, np.concatenate([d_w[..., None] * w, d_b[..., None]], -1)
    if method == "closed":
        raise ValueError(f"no closed form for the mean of {act.name}; closed: relu, erf")
    return _quadrature_mean(w, b, act, n)


def gaussian_mean(
    theta: ArrayLike,
    *,
    activation: str | Activation = "relu",
    method: Method = "auto",
    n_nodes: int = DEFAULT_NODES,
) -> Array:
    r"""Compute the mean E[σ(w·x + b)] for x ~ N(0, I_d), i.e. u ~ N(b, s²), s = ‖w‖.

    .. math::

        \mathbb E[\mathrm{relu}(u)] = b\,\Phi(b/s) + s\,\varphi(b/s), \qquad
        \mathbb E[\mathrm{erf}(u)] = \mathrm{erf}\big(b/\sqrt{1 + 2s^2}\big),

    and Gauss–Hermite quadrature Σₖ ωₖ σ(b + s tₖ) otherwise.

    Parameters
    ----------
    theta : array_like, shape (..., m, d+2)
        Particles.
    activation : str or Activation, default "relu"
        σ.
    method : {"auto", "closed", "quadrature"}
        As for :func:`kernel_block`.
    n_nodes : int, default 32
        Quadrature nodes.

    Returns
    -------
    ndarray, shape (..., m)
    """
    return _mean_and_grad(theta, activation, method, n_nodes)[0]


def gaussian_mean_grad(
    theta: ArrayLike,
    *,
    activation: str | Activation = "relu",
    method: Method = "auto",
    n_nodes: int = DEFAULT_NODES,
) -> Array:
    r"""Compute the gradient of E[σ(w·x + b)] with respect to (w, b).

    .. math::

        \nabla_{(w,b)} \mathbb E[\sigma(u)] = \big(\mathbb E[\sigma'(u)\,x],\
        \mathbb E[\sigma'(u)]\big), \qquad
        \text{ReLU: } \Big(\frac{\varphi(b/s)}{s}\,w,\ \Phi(b/s)\Big)

    (Stein's lemma E[g(u) x] = w E[g′(u)]); w = 0 gives (0, σ′(b)).

    Parameters
    ----------
    theta : array_like, shape (..., m, d+2)
        Particles.
    activation : str or Activation, default "relu"
        σ.
    method : {"auto", "closed", "quadrature"}
        As for :func:`kernel_block`.
    n_nodes : int, default 32
        Quadrature nodes.

    Returns
    -------
    ndarray, shape (..., m, d+1)
    """
    return _mean_and_grad(theta, activation, method, n_nodes)[1]
