"""Reproduction of Neurosurgeon (Kang et al., ASPLOS 2017) (see README.md)."""
