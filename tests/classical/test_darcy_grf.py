import numpy as np
import pytest
import scipy.fft
import scipy.sparse.linalg as spla

from pdekit.classical import darcy
from pdekit.classical.grf import gaussian_random_field, grf_spectrum, rbf_gaussian_process


def test_darcy_solution_equals_spsolve():
    rng = np.random.default_rng(0)
    a = darcy.darcy_coefficient(101, rng)
    assert set(np.unique(a)) == {3.0, 12.0}
    u, solution = darcy.solve_darcy(a, rtol=1e-12)
    A = darcy.darcy_operator(a).to_scipy()
    expected = spla.spsolve(A.tocsc(), np.ones(A.shape[0]))
    interior = u[1:-1, 1:-1].ravel()
    assert np.linalg.norm(interior - expected) <= 1e-8 * np.linalg.norm(expected)
    assert np.all(u[0] == 0) and np.all(u[:, -1] == 0)
    assert solution.relative_residual <= 1e-11 and solution.iterations <= 20


def test_darcy_operator_averages_node_coefficients_on_faces():
    a = np.arange(1.0, 26.0).reshape(5, 5)
    A = darcy.darcy_operator(a).to_scipy().toarray()
    h2 = (1 / 4) ** 2
    # unknown (0, 0) is node (1, 1); its faces average a[1,1] with a[0,1], a[2,1], a[1,0], a[1,2]
    expected = (0.5 * (a[1, 1] + a[0, 1]) + 0.5 * (a[1, 1] + a[2, 1]) + 0.5 * (a[1, 1] + a[1, 0])
                + 0.5 * (a[1, 1] + a[1, 2])) / h2
    assert A[0, 0] == pytest.approx(expected)
    assert A[0, 1] == pytest.approx(-0.5 * (a[1, 1] + a[1, 2]) / h2)


def test_subsample_keeps_the_boundary():
    field = np.arange(21 * 21.0).reshape(21, 21)
    coarse = darcy.subsample(field, 5)
    assert coarse.shape == (5, 5)
    assert coarse[-1, -1] == field[-1, -1]
    with pytest.raises(ValueError, match="factor"):
        darcy.subsample(field, 3)


def test_grf_matches_its_spectrum():
    rng = np.random.default_rng(1)
    shape = (32, 32)
    fields = gaussian_random_field(shape, rng, batch=2000)
    np.testing.assert_allclose(fields.mean(axis=(1, 2)), 0.0, atol=1e-12)  # mean mode removed
    modes = scipy.fft.dctn(fields, type=2, axes=(1, 2), norm="ortho")
    expected = (grf_spectrum(shape) * 32) ** 2
    measured = (modes**2).mean(0)
    low = (slice(0, 6), slice(0, 6))
    ratio = measured[low][expected[low] > 0] / expected[low][expected[low] > 0]
    np.testing.assert_allclose(ratio, 1.0, atol=0.15)  # 2000 samples: about 3% noise per mode
    again = gaussian_random_field(shape, np.random.default_rng(1), batch=2000)
    np.testing.assert_array_equal(fields, again)


def test_grf_in_1d_and_3d_and_errors():
    rng = np.random.default_rng(0)
    assert gaussian_random_field((50,), rng).shape == (50,)
    assert gaussian_random_field((8, 9, 10), rng, batch=2).shape == (2, 8, 9, 10)
    with pytest.raises(ValueError, match="shape"):
        gaussian_random_field((2, 2, 2, 2), rng)
    with pytest.raises(TypeError, match="rng"):
        gaussian_random_field((4, 4), 0)


def test_rbf_process_covariance():
    x = np.linspace(0, 1, 21)
    samples = rbf_gaussian_process(x, np.random.default_rng(2), length_scale=0.2, batch=20000)
    covariance = samples.T @ samples / len(samples)
    kernel = np.exp(-0.5 * ((x[:, None] - x[None, :]) / 0.2) ** 2)
    np.testing.assert_allclose(covariance, kernel, atol=0.05)
