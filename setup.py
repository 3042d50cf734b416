"""Build dlcore and its Cython kernels.

The source tree keeps the compiled tier at the top level (``kernels/``); it installs as the
subpackage ``dlcore.kernels``. Every Cython extension is listed here explicitly, with the
compiler directives set once for the whole build.
"""
import glob
import os
import shutil
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

# One line per .pyx file in kernels/.
EXTENSIONS = [
    "_team",
    "_gemm",
    "_elementwise",
    "_reduce",
    "_losses",
    "_conv",
    "_pooling",
    "_normalization",
    "_recurrent",
    "_embedding",
    "_attention",
    "_quantized",
    "_dropout",
]

# DLCORE_BUILD_ONLY=_conv,_pooling rebuilds only those (developers: `python setup.py build_ext --inplace`).
if os.environ.get("DLCORE_BUILD_ONLY"):
    EXTENSIONS = [name for name in EXTENSIONS if name in os.environ["DLCORE_BUILD_ONLY"].split(",")]

DEBUG = os.environ.get("DLCORE_DEBUG_CYTHON", "0") == "1"
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "nonecheck": False,
    "embedsignature": True,
}

if sys.platform.startswith("linux"):
    OPENMP_COMPILE, OPENMP_LINK = ["-fopenmp"], ["-fopenmp"]
elif sys.platform == "darwin":
    OPENMP_COMPILE, OPENMP_LINK = [], []  # Apple clang ships no OpenMP: kernels run serially
else:
    OPENMP_COMPILE, OPENMP_LINK = ["/openmp"], []

OPT = [] if sys.platform == "win32" else ["-O3", "-ffp-contract=fast"]


# Kernels cimport the cdef functions of another kernel module by its installed name
# (`from ._team cimport team_run` in dlcore.kernels._gemm: Cython then imports dlcore.kernels._team
# at run time). The source tree keeps those .pxd files in kernels/, so the build lays them out
# under their package path for Cython to find.
PXD_ROOT = os.path.join("build", "pxd")


def package_pxd_tree():
    target = os.path.join(PXD_ROOT, "dlcore", "kernels")
    os.makedirs(target, exist_ok=True)
    for folder in (os.path.join(PXD_ROOT, "dlcore"), target):
        open(os.path.join(folder, "__init__.pxd"), "a").close()
    for pxd in glob.glob("kernels/*.pxd"):
        shutil.copy(pxd, target)
    return PXD_ROOT


def extension(name):
    return Extension(
        f"dlcore.kernels.{name}",
        sources=[f"kernels/{name}.pyx"],
        depends=sorted(glob.glob("kernels/*.h") + glob.glob("kernels/*.pxd") + glob.glob("kernels/*.pxi")),
        include_dirs=[numpy.get_include(), "kernels"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=OPT + OPENMP_COMPILE,
        extra_link_args=OPENMP_LINK,
    )


setup(
    packages=find_packages(include=["dlcore", "dlcore.*"])
    + ["dlcore.kernels", "dlcore.kernels.cuda", "dlcore.benchmarks", "dlcore.benchmarks.workloads"],
    # kernels/ and benchmarks/ sit at the top of the source tree and install inside dlcore
    package_dir={"dlcore.kernels": "kernels", "dlcore.benchmarks": "benchmarks"},
    package_data={"dlcore.kernels": ["*.pxd", "*.pxi", "*.pyx", "*.h", "README.md"]},
    ext_modules=cythonize(
        [extension(name) for name in EXTENSIONS],
        include_path=[package_pxd_tree()],
        compiler_directives=DIRECTIVES,
        annotate=False,
    ),
    zip_safe=False,
)
