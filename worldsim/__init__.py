"""worldsim: an open synthetic-data game engine and learned world simulator."""

__version__ = "0.1.0"
