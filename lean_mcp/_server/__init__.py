"""Pieces the HTTP front ends share: bearer authentication (more to move here as the layout grows)."""
