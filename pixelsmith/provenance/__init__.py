"""Provenance: invisible watermarks in the pixels and signed content credentials in the file."""
