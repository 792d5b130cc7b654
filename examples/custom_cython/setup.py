"""Build the example against the installed orpflow: its .pxd files and C headers."""
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

import orpflow

ext = Extension("my_strategy", ["my_strategy.pyx"], include_dirs=[orpflow.get_include()],
                extra_compile_args=["-O2"])
setup(
    name="my-strategy",
    ext_modules=cythonize([ext], include_path=[str(Path(orpflow.__file__).resolve().parents[1])]),
)
