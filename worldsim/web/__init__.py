"""worldsim in the browser (`worldsim serve`): datasets, models, side-by-side play of the engine and the dream, and
generation, served by a local ASGI app (Starlette + uvicorn).

An edge layer like `worldsim.cli` (docs/architecture.md section 2): play needs an engine and a model at once. Only
files under the configured roots are read or served (`paths.Roots`); nothing a request names is unpickled or run.
"""
