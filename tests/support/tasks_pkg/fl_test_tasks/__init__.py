"""Test tasks for fractal_like: command-line programs following Fractal's task-call contract.

Every task is a script of this folder, run as
``python <package_root>/<script>.py --args-json ARGS --out-json OUT``.
The package uses the standard library only.
"""

__version__ = "0.1.0"
