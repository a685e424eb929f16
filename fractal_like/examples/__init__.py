"""Examples shipped with fractal_like: the demo's task package (``demo_tasks``)."""

from pathlib import Path

DEMO_TASKS_ROOT = Path(__file__).parent / "demo_tasks"
"""The package root of the demo tasks: the folder that holds ``__FRACTAL_MANIFEST__.json``."""
