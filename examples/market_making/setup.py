"""Build the Cython strategies against the installed orpflow: its .pxd files and C headers.
-ffp-contract=off: the compiler may not fuse a multiply and an add (one rounding instead of
two), so mm_cython computes exactly mm.py's doubles."""
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

import orpflow

args = ["-O2", "-ffp-contract=off"]
exts = [Extension(name, [f"{name}.pyx"], include_dirs=[orpflow.get_include()], extra_compile_args=args)
        for name in ("mm_cython", "grid_cython")]
setup(
    name="orpflow-market-making-example",
    ext_modules=cythonize(exts, include_path=[str(Path(orpflow.__file__).resolve().parents[1])]),
)
