"""Hydra configuration files of the `worldsim` command (a package so the YAML files ship with installs)."""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
