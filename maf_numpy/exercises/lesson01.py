"""The exercises of lesson 01 (see ``lessons/solutions/`` for the complete notebook)."""

import numpy as np

from .core import arrays_close, exercise, numbers_close  # noqa: F401 - the helpers every lesson module uses

# The lesson's 1-D map x = f(z) = SCALE * z + SHIFT (one coordinate of a MAF layer, alpha = log SCALE) and the
# point of exercise 01.1.
SCALE, SHIFT, X_1D = 0.75, 1.0, 2.0
# Exercises 01.2 and 01.3: x = A z with z ~ N(0, I), and the point of exercise 01.3.
A = np.array([[2.0, 0.3], [-1.0, 4.0]])
X_2D = np.array([1.0, 2.0])


def _scalar(answer):
    """A one-element array (e.g. what log_p_x returns for one point) counts as a number."""
    if isinstance(answer, np.ndarray) and answer.size == 1:
        return answer.reshape(())
    return answer


def _is(value, candidate):
    return np.isfinite(candidate) and abs(value - candidate) <= 1e-6 * max(abs(candidate), 1e-12)


def _normal(z):
    return float(np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi))


@exercise("01.1", "p_x(2) for x = 0.75 z + 1",
          "normalise first: z = f^{-1}(2), score z under N(0, 1), then multiply by |d f^{-1}/dx|.")
def _(answer):
    import maf_numpy as mf
    x = np.array([[X_1D]])
    z, log_det = mf.transforms.affine_inverse(x, SHIFT, np.log(SCALE))       # the library's normalising map
    expected = float(np.exp(mf.standard_normal_log_prob(z) + log_det)[0])
    answer = _scalar(answer)
    problem = numbers_close(answer, expected, rtol=1e-6, what="your p_x(2)")
    if problem is None or "single real number" in problem or "finite" in problem:
        return problem
    value, z_right = float(answer), (X_1D - SHIFT) / SCALE
    if _is(value, float(np.log(expected))):
        return "that is log p_x(2); the exercise asks for the density itself"
    if _is(value, _normal(z_right)):
        return "you scored z = f^{-1}(2) under N(0, 1) but left out the volume factor |d f^{-1}/dx|"
    if _is(value, _normal(z_right) * SCALE):
        return ("you multiplied by 0.75 = |df/dz|; the formula needs |d f^{-1}/dx| "
                "(the map squeezes, so the density gets taller)")
    if any(_is(value, _normal(X_1D) * factor) for factor in (1, 1 / SCALE, SCALE)):
        return "you evaluated the base density at x; evaluate it at z = f^{-1}(x)"
    if any(_is(value, _normal(bad_z) * factor) for bad_z in ((X_1D - SHIFT) * SCALE, X_1D / SCALE - SHIFT,
                                                             (X_1D + SHIFT) / SCALE)
           for factor in (1, 1 / SCALE, SCALE)):
        return "check your f^{-1}: solve x = 0.75 z + 1 for z"
    if _is(value, float(np.exp(-z_right**2) / np.sqrt(2 * np.pi)) / SCALE):
        return "check the exponent of the Gaussian density: it is -z^2 / 2"
    return problem


@exercise("01.2", "log|det A| for A = [[2, 0.3], [-1, 4]]",
          "the Jacobian of z -> A z is A at every point; np.linalg.slogdet returns (sign, log|det|).")
def _(answer):
    sign, expected = np.linalg.slogdet(A)
    answer = _scalar(answer)
    problem = numbers_close(answer, expected, rtol=1e-6, what="your log|det A|")
    if problem is None or "single real number" in problem or "finite" in problem:
        return problem
    value = float(answer)
    if _is(value, float(sign * np.exp(expected))):
        return "that is det A itself; the exercise asks for its logarithm"
    if _is(value, float(np.log(abs(A[0, 0] * A[1, 1] + A[0, 1] * A[1, 0])))):
        return "check the sign in the 2x2 determinant: ad - bc"
    if _is(value, float(np.log(abs(A[0, 0] * A[1, 1])))):
        return "the off-diagonal entries count too: A is not triangular"
    return problem


@exercise("01.3", "log p_x(x) at x = (1, 2) for x = A z, z ~ N(0, I)",
          "z = f^{-1}(x) = A^{-1} x (np.linalg.solve), then add log|det J_{f^{-1}}|, "
          "the log-det of the normalising map.")
def _(answer):
    import maf_numpy as mf
    _, log_det_A = np.linalg.slogdet(A)
    z = np.linalg.solve(A, X_2D)
    log_pz = float(mf.standard_normal_log_prob(z[None])[0])
    expected = log_pz - log_det_A
    answer = _scalar(answer)
    problem = numbers_close(answer, expected, rtol=1e-6, what="your log p_x(x)")
    if problem is None or "single real number" in problem or "finite" in problem:
        return problem
    value = float(answer)
    if value > 0 and _is(value, float(np.exp(expected))):
        return "that is p_x(x) itself; the exercise asks for its logarithm"
    if _is(value, log_pz + log_det_A):
        return ("you added log|det A| = log|det J_f|; the formula adds the log-det of the normalising map "
                "f^{-1}, whose Jacobian is A^{-1}")
    if _is(value, log_pz):
        return "you scored z = A^{-1} x under N(0, I) but left out the log-det term"
    wrong_z = [A @ X_2D, X_2D, np.linalg.solve(A.T, X_2D)]
    if any(_is(value, float(mf.standard_normal_log_prob(bad[None])[0]) + s * log_det_A)
           for bad in wrong_z for s in (-1, 0, 1)):
        return "check z: it is f^{-1}(x) = A^{-1} x, not A x, A^{-T} x or x itself"
    if _is(value, log_pz - log_det_A + 0.5 * np.log(2 * np.pi)) or _is(value, log_pz - log_det_A
                                                                        - 0.5 * np.log(2 * np.pi)):
        return "check the normalising constant of N(z; 0, I) in D = 2: it is -(D/2) log(2 pi)"
    return problem
