"""Forensics: is an image generated, and which regions of a photo were filled or pasted in.

The detectors are small networks trained outside the engine (their recipes are scripts) and
shipped in the zoo as `family: forensics` entries.
"""
