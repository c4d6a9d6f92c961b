"""Layers and likelihoods that several model families share."""
