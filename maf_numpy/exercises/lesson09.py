"""The exercises of lesson 09 (see ``lessons/solutions/`` for the complete notebook).

The image, its noise and the class-conditional log-likelihoods are the ones the exercise cells state; the
expected answers are computed here with ``maf_numpy.datasets`` at check time.
"""

import numpy as np

from .core import arrays_close, exercise, numbers_close  # noqa: F401 - the helpers every lesson module uses

NOISE_SEED = 9  # u0 = np.random.default_rng(9).uniform(size=64), the noise of exercise 09.1
GAUSSIAN_SEED = 100  # the noise of the training copy the full-covariance Gaussian is fitted to
# Exercise 09.3: log p(x | c) of one image for the classes c = 0..9 (nats, logit space), as stated in the cell.
CLASS_LOG_LIKELIHOODS = np.array([-402.7, -215.9, -188.3, -131.6, -290.4, -133.1, -251.8, -240.2, -162.5, -147.9])


def _image():
    """x0 (the first test image, floats), y0 = (x0 + u0) / 17 and z0 with log|det dz/dy| of the lesson's logit."""
    from .. import datasets as ds
    data = ds.digits()
    x0 = data.x_test[0].astype(np.float64)
    u0 = np.random.default_rng(NOISE_SEED).uniform(size=x0.shape)
    y0 = (x0 + u0) / ds.DIGITS_LEVELS
    z0, log_det_y = ds.logit_transform(y0[None, :])
    return data, x0, y0, z0, float(log_det_y[0])


@exercise("09.1", "log|det dz/dv| of the dequantise-then-logit map for one image",
          "chain rule: v -> y = v / 17 -> z = logit(lam + (1 - 2 lam) y); each pixel contributes the log of its own "
          "derivative dz_i/dv_i, and the Jacobian is diagonal")
def _(answer):
    from .. import datasets as ds
    _, _, y0, _, log_det_y = _image()
    D = y0.size
    expected = log_det_y - D * np.log(ds.DIGITS_LEVELS)
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return f"your answer should be one number (the log-det of the whole map, summed over the pixels), got " \
               f"{type(answer).__name__}"
    if np.isclose(value, log_det_y, rtol=1e-9, atol=1e-9):
        return ("that is log|det dz/dy|, the logit's log-det: the map starts one step earlier, at v = x + u, and "
                "y = v / 17 has its own derivative for every pixel")
    if np.isclose(value, log_det_y + D * np.log(ds.DIGITS_LEVELS), rtol=1e-9, atol=1e-9):
        return "the derivative of y = v / 17 is 1/17, not 17: check the sign of its log"
    if np.isclose(value, float(ds.logit_log_det(y0, 0.05)) - D * np.log(ds.DIGITS_LEVELS), rtol=1e-9, atol=1e-9):
        return "that uses lam = 0.05; the lesson's logit (and this exercise) uses lam = 1e-6"
    return numbers_close(value, expected, rtol=1e-9, atol=1e-9, what="your log-det")


@exercise("09.2", "bits per pixel of one test image under the full-covariance Gaussian",
          "combine the dequantisation bound of section 2 with the change of variables through the logit (section 3), "
          "then turn nats per image into bits per pixel")
def _(answer):
    from .. import datasets as ds
    data, _, y0, z0, log_det_y = _image()
    gaussian = ds.GaussianBaseline.fit(ds.dequantize_logit(data.x_train, rng=GAUSSIAN_SEED)[0])
    log_p_z = float(gaussian.log_prob(z0)[0])
    D = y0.size
    log_P = log_p_z + log_det_y - D * np.log(ds.DIGITS_LEVELS)
    expected = float(ds.bits_per_dim(log_P, D))
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return f"your answer should be one number (bits per pixel), got {type(answer).__name__}"
    if np.isclose(value, expected * np.log(2.0), rtol=1e-6):
        return "that is in nats per pixel: divide by log 2 to get bits"
    if np.isclose(value, expected * D, rtol=1e-6):
        return "that is for the whole image: divide by the number of pixels"
    if np.isclose(value, float(ds.bits_per_dim(log_p_z + log_det_y, D)), rtol=1e-6):
        return ("that is -log2 p_y(y0) / D, a density on [0, 1)^64; the probability of the pixels needs the "
                "- D log 17 of the dequantisation bound")
    if np.isclose(value, float(ds.bits_per_dim(log_p_z - D * np.log(ds.DIGITS_LEVELS), D)), rtol=1e-6):
        return "the logit's log-det log|det dz/dy| is missing: log p_y(y) = log p_z(z) + log|det dz/dy|"
    return numbers_close(value, expected, rtol=1e-6, what="your bits per pixel")


@exercise("09.3", "Bayes' rule: the class posterior from class-conditional log-likelihoods",
          "p(c | x) = p(x | c) p(c) / sum_c' p(x | c') p(c'), with p(c) the training-set class frequencies; work with "
          "logs and subtract the largest before exponentiating")
def _(answer):
    from .. import datasets as ds
    data = ds.digits()
    prior = np.bincount(data.y_train, minlength=10) / len(data.y_train)

    def posterior(log_prior):
        scores = CLASS_LOG_LIKELIHOODS + log_prior
        scores = scores - scores.max()
        return np.exp(scores) / np.exp(scores).sum()

    expected = posterior(np.log(prior))
    try:
        value = np.asarray(answer, dtype=float)
    except (TypeError, ValueError):
        return f"your posterior should be an array of 10 probabilities, got {type(answer).__name__}"
    if value.shape != (10,):
        return f"your posterior has shape {value.shape}; it should have shape (10,), one probability per class"
    if not np.all(np.isfinite(value)):
        return "your posterior has entries that are not finite numbers (exponentiating large negative " \
               "log-likelihoods directly underflows: subtract the largest first)"
    if np.allclose(value, np.log(expected), rtol=1e-6, atol=1e-9):
        return "those are log-probabilities: exponentiate them"
    if abs(value.sum() - 1.0) > 1e-6:
        return f"your probabilities sum to {value.sum():.6g}, not 1: normalise over the 10 classes"
    if np.allclose(value, posterior(np.zeros(10)), rtol=1e-6, atol=1e-9) and not np.allclose(value, expected,
                                                                                               rtol=1e-6, atol=1e-9):
        return "that posterior uses equal priors; use the training-set class frequencies p(c)"
    return arrays_close(value, expected, rtol=1e-6, atol=1e-9, what="your posterior")
