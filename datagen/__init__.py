"""Data generation: policies drive the engines, episodes become captioned clips in zarr stores."""
