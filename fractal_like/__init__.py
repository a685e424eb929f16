"""fractal_like: a multi-user HPC workflow manager speaking the Fractal v2 API."""

__version__ = "0.1.0"
