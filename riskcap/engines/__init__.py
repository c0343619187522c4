"""Engines that stream partitions of a population through the same pure stage functions."""
