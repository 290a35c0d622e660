"""Reproduction of Edgent (Li, Zhou, Chen, MECOMM 2018; Li et al., IEEE TWC 2020); see README.md."""
