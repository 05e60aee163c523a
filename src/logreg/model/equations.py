"""The lesson's equations, one function each: forward, loss, gradient, and the SGD step.

Notation (one row per sample, K' = 1 column for two classes, K columns for K > 2):

    X : (n, D) features        W : (D, K') weights       b : (K',) intercept
    Z = X W + b                                           the linear predictor (logits)
    P = σ(Z)  (K' = 1)   or   softmax(Z)  (K' = K)        the predicted probabilities
    Y : (n, K') targets, 0/1 for the positive class, or one-hot
    s : (n,) sample weights (class weights and rebalancing enter here)

The objective is the mean sample-weighted cross-entropy plus the elastic-net penalty

    J(W, b) = 1/n Σ_i s_i·CE(y_i, z_i) + α·(ρ·‖W‖₁ + (1−ρ)/2·‖W‖₂²)

with α = ``alpha`` and ρ = ``l1_ratio``. The intercept is not penalised and the mean
divides by n, not by Σ s_i, so J has the same minimiser as scikit-learn's
LogisticRegression with C = 1/(α·n). CE is the negative log of the predicted
probability of the observed class, so minimising the unweighted, unpenalised J is
maximum likelihood. For both links the gradient has the same shape,

    ∂J/∂W = Xᵀ S (P − Y) / n + α(1−ρ) W + αρ·sign(W)        ∂J/∂b = 1ᵀ S (P − Y) / n

A minibatch step (:func:`sgd_step`) on m of a full batch's B rows follows the gradient
of J on the batch, scaled by m/B, with momentum μ: v ← μv + g, θ ← θ − lr·v. The L1 term
has no gradient at 0, so the step does not follow αρ·sign(W): it then shrinks W with the
L1 norm's proximal step, the soft threshold, by the shrinkage each weight is still owed
(:func:`cumulative_l1_step`), so weights reach exact zeros. The data term is a sum over
rows, so the solvers can sum it over blocks of rows (:mod:`logreg.model.rows`).
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray  # float arrays, shaped as the notation above says


def sigmoid(z: Array) -> Array:
    """σ(z) = 1/(1+e^{−z}), written as (1 + tanh(z/2))/2 so it never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def softplus(z: Array) -> Array:
    """log(1 + e^z) as max(z, 0) + log1p(e^{−|z|}): never overflows, 6× np.logaddexp's speed."""
    tail = np.abs(z)
    np.negative(tail, out=tail)
    np.exp(tail, out=tail)
    np.log1p(tail, out=tail)
    return tail + np.maximum(z, 0.0)


def softmax(Z: Array) -> Array:
    """Row-wise softmax; subtracting the row max keeps exp() from overflowing."""
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def log_sum_exp(Z: Array) -> Array:
    """log Σ_k e^{Z_k} per row, shifted by the row max for stability."""
    Z_max = Z.max(axis=1, keepdims=True)
    return (Z_max + np.log(np.exp(Z - Z_max).sum(axis=1, keepdims=True)))[:, 0]


def predict_probabilities(Z: Array) -> Array:
    """P from the logits: sigmoid for one column, softmax for several."""
    return sigmoid(Z) if Z.shape[1] == 1 else softmax(Z)


def cross_entropy(Z: Array, Y: Array) -> Array:
    """Per-sample cross-entropy computed from the logits, never from log(P).

    Binary: −[y log σ(z) + (1−y) log(1−σ(z))] = log(1+e^z) − y·z.
    Softmax: −Σ_k Y_k log softmax(Z)_k = logsumexp(Z) − Σ_k Y_k Z_k.
    """
    if Z.shape[1] == 1:
        return softplus(Z[:, 0]) - Y[:, 0] * Z[:, 0]
    return log_sum_exp(Z) - np.einsum("ik,ik->i", Y, Z)


def weighted_cross_entropy_sum(Z: Array, Y: Array, s: Array) -> float:
    """Σ_i s_i·CE(y_i, z_i) over these rows: n times the data term of J."""
    return float(np.dot(s, cross_entropy(Z, Y)))


def balanced_class_weights(counts: Array) -> Array:
    """s per class for class_weight="balanced": n/(K·count), so each class weighs n/K in all."""
    return counts.sum() / (len(counts) * counts)


def penalty_value(W: Array, alpha: float, l1_ratio: float) -> float:
    """α·(ρ‖W‖₁ + (1−ρ)/2‖W‖₂²)."""
    return float(alpha * (l1_ratio * np.abs(W).sum() + 0.5 * (1.0 - l1_ratio) * (W * W).sum()))


def objective_value(
    X: Array, Y: Array, s: Array, W: Array, b: Array, alpha: float, l1_ratio: float
) -> float:
    """J(W, b): mean weighted cross-entropy (divided by n) plus the penalty."""
    return weighted_cross_entropy_sum(X @ W + b, Y, s) / X.shape[0] + penalty_value(
        W, alpha, l1_ratio
    )


def data_term_sums(X: Array, Z: Array, Y: Array, s: Array) -> tuple[float, Array, Array]:
    """Σ s·CE, Xᵀ S(P − Y), 1ᵀ S(P − Y) over these rows, from their logits Z = XW + b."""
    R = s[:, None] * (predict_probabilities(Z) - Y)
    return weighted_cross_entropy_sum(Z, Y, s), X.T @ R, R.sum(axis=0)


def add_penalty(
    n: int, sums: tuple[float, Array, Array], W: Array, alpha: float, l1_ratio: float
) -> tuple[float, Array, Array]:
    """J, ∂J/∂W, ∂J/∂b from the data term's sums over all n rows (:func:`data_term_sums`)."""
    loss_sum, grad_W_sum, grad_b_sum = sums
    loss = loss_sum / n + penalty_value(W, alpha, l1_ratio)
    grad_W = grad_W_sum / n + alpha * (1.0 - l1_ratio) * W + alpha * l1_ratio * np.sign(W)
    return loss, grad_W, grad_b_sum / n


def loss_and_gradient(
    X: Array, Y: Array, s: Array, W: Array, b: Array, alpha: float, l1_ratio: float
) -> tuple[float, Array, Array]:
    """J and its gradient (∂J/∂W, ∂J/∂b) from one linear predictor (L1: αρ·sign(W))."""
    return add_penalty(X.shape[0], data_term_sums(X, X @ W + b, Y, s), W, alpha, l1_ratio)


def soft_threshold(W: Array, threshold: float | Array) -> Array:
    """prox of t‖·‖₁: shrink toward zero by t and stop exactly at zero."""
    return np.sign(W) * np.maximum(np.abs(W) - threshold, 0.0)


def cumulative_l1_step(W: Array, offered: float, received: Array) -> tuple[Array, Array]:
    """The L1 step of SGD: Tsuruoka, Tsujii and Ananiadou's cumulative penalty (2009).

    ``offered`` is u, the total shrinkage lr·αρ·(m/B) of every step so far; ``received``
    is q, the signed shrinkage each weight has had. Each weight is soft-thresholded by
    what it is still owed, u + q for W > 0 and u − q for W < 0, so the noise of many
    small steps cannot keep a weight alive. Returns the new W and q.
    """
    shrunk = soft_threshold(W, offered + np.sign(W) * received)
    return shrunk, received + (shrunk - W)


# -- the step size: from the smoothness of J ----------------------------------------
#
# Write J = 1/n Σ_i f_i, f_i(θ) = s_i·CE(y_i, x̃_iθ) + α(1−ρ)/2·‖W‖² (x̃_i = [x_i, 1] with
# the intercept; L1 is not smooth, its soft threshold needs no bound). In θ the Hessian
# of CE(y, x̃θ) is σ'(z)·x̃x̃ᵀ for the sigmoid, with σ' = p(1−p) ≤ 1/4, and
# (diag(p) − ppᵀ) ⊗ x̃x̃ᵀ for the softmax, with diag(p) − ppᵀ ≼ ½(I − 11ᵀ/K) ≼ ½I
# (Böhning 1992). So ∇²f_i ≼ L_i·I and ∇²J ≼ L·I, with c = 1/4 or 1/2 and
#
#     L_i = c·s_i‖x̃_i‖² + α(1−ρ)        L = c·λ_max(X̃ᵀSX̃)/n + α(1−ρ) ≤ L̄ = mean_i L_i
#
# (the mean divides by n, as J does). A batch of B of the n rows, drawn without
# replacement, has the expected smoothness (Gower et al. 2019, "SGD: general analysis
# and improved rates", Proposition 3.8)
#
#     𝓛(B) = n(B−1)/(B(n−1))·L + (n−B)/(B(n−1))·L_max
#
# L for the full batch, L_max = max_i L_i for one row. The worst row is too cautious
# for real data: one of Caravan's 5,822 rows makes L_max 70× the mean L̄ of the L_i;
# and a single row cannot make the iterates grow, for its gradient s_i(p_i − y_i)x̃_i is
# bounded whatever θ. So 𝓛̄(B) puts L̄ in L_max's place: L for the full batch, L̄ for
# single rows. For gradient descent on a μ-strongly convex, L-smooth function the step
# 2/(L + μ) is the largest with a guaranteed contraction (Nesterov, "Introductory
# lectures on convex optimization", Theorem 2.1.15), and here μ ≥ α(1−ρ). So
#
#     learning_rate="auto":  γ = 2/(𝓛̄(B) + α(1−ρ))
#
# On ill-conditioned data (breast_cancer, Caravan) SGD's progress grows with the step,
# and 1/𝓛̄(B), the step of the descent lemma, ends 2 to 8 times further from the optimum.


def hessian_bound_per_squared_norm(n_outputs: int) -> float:
    """c in ∇²_θ CE(y, x̃θ) ≼ c‖x̃‖²·I: 1/4 for the sigmoid (K' = 1), 1/2 for the softmax."""
    return 0.25 if n_outputs == 1 else 0.5


def smoothness(X_tilde: Array, s: Array, n_outputs: int, l2: float) -> tuple[float, float]:
    """(L, L̄) of J over the rows X̃ (the 1 of the intercept included), l2 = α(1−ρ)."""
    c, n = hessian_bound_per_squared_norm(n_outputs), X_tilde.shape[0]
    R = np.sqrt(s)[:, None] * X_tilde  # X̃ᵀSX̃ = RᵀR
    return c * squared_spectral_norm(R) / n + l2, c * float(np.einsum("ij,ij->", R, R)) / n + l2


def squared_spectral_norm(R: Array) -> float:
    """λ_max(RᵀR), from the smaller of RᵀR and RRᵀ: their nonzero eigenvalues are the same."""
    return float(np.linalg.eigvalsh(R @ R.T if R.shape[0] < R.shape[1] else R.T @ R)[-1])


def auto_step_size(L: float, L_mean: float, n: int, B: int, mu: float) -> float:
    """γ = 2/(𝓛̄(B) + μ) for batches of B ≤ n rows: 𝓛(B) with L̄ in L_max's place."""
    if n == 1:
        return 2.0 / (L_mean + mu)
    expected_smoothness = (n * (B - 1) * L + (n - B) * L_mean) / (B * (n - 1))
    return 2.0 / (expected_smoothness + mu)


def sgd_step(
    W: Array,
    b: Array,
    velocity: tuple[Array, Array],
    l1_received: Array,
    batch: tuple[Array, Array, Array],
    *,
    full_batch: int,
    lr: float,
    l1_offered: float,
    alpha: float,
    l1_ratio: float,
    momentum: float,
    fit_intercept: bool,
) -> tuple[Array, Array, tuple[Array, Array], Array]:
    """One SGD step on ``batch`` = (X_b, Y_b, s_b); returns W, b, velocity and L1's q.

    ``l1_offered`` is u, the L1 shrinkage offered up to and including this step.
    """
    X_b, Y_b, s_b = batch
    share = X_b.shape[0] / full_batch  # m/B: the short last batch takes its share
    _, grad_W, grad_b = loss_and_gradient(X_b, Y_b, s_b, W, b, alpha * (1.0 - l1_ratio), 0.0)
    grad_W, grad_b = share * grad_W, (share * grad_b if fit_intercept else 0.0 * grad_b)
    velocity = (momentum * velocity[0] + grad_W, momentum * velocity[1] + grad_b)
    W, b = W - lr * velocity[0], b - lr * velocity[1]
    if alpha * l1_ratio:
        W, l1_received = cumulative_l1_step(W, l1_offered, l1_received)
    return W, b, velocity, l1_received
