"""Test-wide settings: one BLAS thread.

The matrices in these tests are small; on a shared 2-core machine a multi-threaded OpenBLAS was 1.5-8x
slower and erratic (measured: the Figure 1 MAF fit took 6.5 s with one thread, up to 49.5 s without).
Results are identical either way. Set before NumPy is first imported by a test module.
"""

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
