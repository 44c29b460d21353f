"""Shared helpers: devices, metrics, atomic files and downloads, plotting."""
