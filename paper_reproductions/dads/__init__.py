"""Reproduction of DADS (Hu et al., INFOCOM 2019) (see README.md)."""
