"""Build the example C extension against the pycapio installed in this interpreter:

    pip install --no-build-isolation .        (or: python setup.py build_ext --inplace)

The header comes from ``pycapio.get_include()``, so pycapio must be importable while building.
"""

from setuptools import Extension, setup

import pycapio

setup(
    name="c-writer",
    version="0.1.0",
    ext_modules=[
        Extension(
            "c_writer",
            ["c_writer.c"],
            include_dirs=[pycapio.get_include()],
            extra_compile_args=["-pthread", "-Wall", "-Wextra", "-Werror"],
            extra_link_args=["-pthread"],
        )
    ],
)
