"""The compact real-time network: ``stylekit.load("fast")``."""
