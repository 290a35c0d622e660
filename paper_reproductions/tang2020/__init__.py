"""Reproduction of Tang et al., multi-user DNN partitioning on one edge server (arXiv 2007.09072) (see README.md)."""
