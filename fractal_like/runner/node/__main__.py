"""`python -m fractal_like.runner.node BATCH`, or, for a copy, `python -I -S DIR BATCH`.

STDLIB ONLY, Python >= 3.9 syntax. Run by its folder's path (a copy beside a job, or the
package itself with `-S`, where the package cannot be imported by name), this file loads
its folder as the package `fractal_like_node`, so the modules' relative imports work.
"""

import importlib
import importlib.util
import os
import sys


def _worker_main() -> int:
    if __package__:
        from .worker import main
    else:
        folder = os.path.dirname(os.path.abspath(__file__))
        if sys.path and os.path.abspath(sys.path[0]) == folder:
            del sys.path[0]  # the package's files must not shadow standard modules
        spec = importlib.util.spec_from_file_location(
            "fractal_like_node",
            os.path.join(folder, "__init__.py"),
            submodule_search_locations=[folder],
        )
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = package
        spec.loader.exec_module(package)
        main = importlib.import_module("fractal_like_node.worker").main
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(_worker_main())
