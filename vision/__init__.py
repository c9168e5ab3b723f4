"""Vision models shared by the workers and search: garment parser, embedder, attributes, duplicates."""

import os

# No model hub is reachable from the shop's machines: resolve Hugging Face names from the local
# cache only (set SHOP_HF_OFFLINE=0 where a hub-pretrained model should be downloaded).
if os.environ.get("SHOP_HF_OFFLINE", "1") == "1":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
