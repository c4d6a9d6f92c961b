"""Small utilities shared by every room of the house."""
