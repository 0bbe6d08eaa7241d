"""Removable media: classify USB block devices and keep non-trust media read-only."""
