"""Levenberg-Marquardt and its implicit-function-theorem backward pass
(pdekit.models.least_squares): stopping tolerance, gradients against finite differences and
against differentiating through the unrolled iterations."""

import torch

from pdekit.models.least_squares import levenberg_marquardt, solve_least_squares


def _residual(w, A, b):
    u = A @ w
    return torch.cat([u + 0.3 * torch.tanh(u) * u - b, 1e-2 * w])


def _solve(A, b, w0):
    return levenberg_marquardt(_residual, w0, (A, b), rtol=1e-12, maxiter=200).w


def _problem(seed=0, batch=3, m=12, n=4):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(batch, m, n, generator=g, dtype=torch.float64)
    b = torch.randn(batch, m, generator=g, dtype=torch.float64)
    return A, b, torch.zeros(batch, n, dtype=torch.float64)


def test_lm_reaches_its_gradient_tolerance():
    A, b, w0 = _problem()
    res = levenberg_marquardt(_residual, w0, (A, b), rtol=1e-10, maxiter=100)
    assert bool(res.converged.all())
    assert bool((res.gradient_norm <= res.tolerance).all())
    # the gradient J^T F really is that small at the returned point
    w = res.w.clone().requires_grad_()
    obj = sum(0.5 * _residual(w[i], A[i], b[i]).square().sum() for i in range(len(w)))
    (g,) = torch.autograd.grad(obj, w)
    assert float(g.norm(dim=-1).max()) <= float(res.tolerance.max()) * 1.0001
    # and no damped step from there decreases the cost (a local minimum)
    for i in range(len(w)):
        for step in (1e-4, -1e-4):
            shifted = res.w[i] + step * torch.randn(4, dtype=torch.float64)
            assert _residual(shifted, A[i], b[i]).square().sum() >= 2 * res.cost[i] - 1e-12


def test_lm_solves_a_linear_problem_like_lstsq():
    A, b, w0 = _problem(1)
    fun = lambda w, A, b: A @ w - b  # noqa: E731
    res = levenberg_marquardt(fun, w0, (A, b), rtol=1e-12)
    torch.testing.assert_close(res.w, torch.linalg.lstsq(A, b[..., None]).solution[..., 0],
                               rtol=1e-8, atol=1e-10)


def test_ift_gradient_matches_finite_differences_and_unrolled_lm():
    A, b, w0 = _problem(2)
    c = torch.randn(3, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    A1, b1 = A.clone().requires_grad_(), b.clone().requires_grad_()
    w, _, _ = solve_least_squares(_residual, w0, (A1, b1), rtol=1e-12, maxiter=200)
    (w * c).sum().backward()
    # finite differences on a few entries of b and A
    eps = 1e-4
    for (i, j) in [(0, 0), (1, 5), (2, 11)]:
        bp, bm = b.clone(), b.clone()
        bp[i, j] += eps
        bm[i, j] -= eps
        fd = ((_solve(A, bp, w0) - _solve(A, bm, w0)) * c).sum() / (2 * eps)
        torch.testing.assert_close(b1.grad[i, j], fd, rtol=1e-5, atol=1e-7)
    Ap, Am = A.clone(), A.clone()
    Ap[1, 3, 2] += eps
    Am[1, 3, 2] -= eps
    fd = ((_solve(Ap, b, w0) - _solve(Am, b, w0)) * c).sum() / (2 * eps)
    torch.testing.assert_close(A1.grad[1, 3, 2], fd, rtol=1e-5, atol=1e-7)
    # differentiating through the unrolled LM iterations (converged) gives the same gradient
    A2, b2 = A.clone().requires_grad_(), b.clone().requires_grad_()
    unrolled = levenberg_marquardt(_residual, w0, (A2, b2), rtol=1e-13, maxiter=200)
    (unrolled.w * c).sum().backward()
    torch.testing.assert_close(A1.grad, A2.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(b1.grad, b2.grad, rtol=1e-5, atol=1e-7)


def test_float32_inputs_stay_float32():
    A, b, w0 = _problem(4)
    res = levenberg_marquardt(_residual, w0.float(), (A.float(), b.float()), rtol=1e-4)
    assert res.w.dtype == torch.float32 and bool(res.converged.all())
