"""Reproduction of PipeEdge (DSD 2022) and EdgeShard (IoT-J 2024) (see README.md)."""
