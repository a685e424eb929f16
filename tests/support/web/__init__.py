"""A browser check of the Fractal web client against fractal-like (run by hand, never in CI)."""
