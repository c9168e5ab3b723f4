"""Vision models shared by the workers and search: garment parser, embedder, attributes, duplicates.

A library: it imports none of the shop's apps and reads no environment variable. What it needs to be
told (where models live, which CLIP model to serve, …) is passed in once through :func:`configure`.
"""

from vision.config import VisionConfig, configure

__all__ = ["VisionConfig", "configure"]
