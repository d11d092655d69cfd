"""Importers (MineRL, VPT) and exporters (LeRobot) of stores."""
