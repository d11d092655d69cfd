"""Edge commands of the `worldsim` CLI.

These are the only modules under `worldsim/` allowed to import the engines (`envs`, `renderers`) or `datagen`:
they sit at the edge of the dependency graph (ARCHITECTURE.md section 2). The model code in `worldsim/` never does.
"""
