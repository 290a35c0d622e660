"""Reproduction of the DeepThings and MoDNN spatial-partitioning speedups (see README.md)."""
