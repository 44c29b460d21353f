"""Packaging for interpretdl-noise (import name ``interpretdl_noise``)."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# read the version without importing the package (which needs paddle)
INIT = (HERE / "interpretdl_noise" / "__init__.py").read_text()
VERSION = re.search(r'^__version__ = "([^"]+)"', INIT, re.M).group(1)

TEST = ["pytest>=7", "hypothesis>=6.80", "nbclient>=0.9", "nbformat>=5.9", "ipykernel>=6", "cleanlab>=2.5",
        "ruff>=0.5", "selenium>=4.10"]  # browser tests drive the system chromium (apt: chromium chromium-driver)

setup(
    name="interpretdl-noise",
    version=VERSION,
    description="Find mislabeled training samples from PaddlePaddle training dynamics (BHDF, AUM, EMA, CoNAL).",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["interpretdl_noise", "interpretdl_noise.*"]),
    package_data={"interpretdl_noise": ["assets/*", "reporting/static/*"]},
    include_package_data=True,
    install_requires=[
        "numpy>=1.22",
        "tqdm>=4.60",
        "matplotlib>=3.5",
        "pillow>=9.1",  # PNG thumbnails in the HTML report (matplotlib needs it too)
        "requests>=2.25",
        "pandas>=1.3",
        "scikit-learn>=1.0",
        "cleanlab>=2.5",  # the confident joint behind estimate_noise / clean (decisions)
    ],
    extras_require={
        "cpu": ["paddlepaddle>=2.6"],
        "gpu": ["paddlepaddle-gpu>=2.6"],
        "test": TEST,
        "confident": ["cleanlab>=2.5"],
        "corpus": ["mnist1d>=0.0.2"],  # the held-out MNIST-1D source of `interpretdl-noise train-detector`
    },
    entry_points={"console_scripts": ["interpretdl-noise=interpretdl_noise.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
