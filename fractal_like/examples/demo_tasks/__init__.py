"""The tasks of `fractal-like demo`: a tiny task package in the Fractal manifest format.

Standard library only, so any Python 3.11 interpreter runs them as scripts:
``python <this folder>/<script>.py --args-json ARGS --out-json OUT``.

- ``create_demo_images`` (converter_non_parallel): makes ``num_images`` small images
  (a ``pixels.json`` of 16 x 16 values each) under ``zarr_dir``, laid out as the wells of a
  96-well plate, with attributes ``plate`` and ``well`` and type ``is_3D: false``;
- ``measure_demo_image`` (parallel): writes ``measurement.json`` into each image and
  adds the attribute ``mean_intensity`` (and, through the manifest, type ``measured``);
- ``summarise_demo`` (non_parallel): writes ``<zarr_dir>/summary.json`` over all images.
"""
