"""The learned simulator: the stepping core, context sources, the gymnasium envs, wrappers."""
