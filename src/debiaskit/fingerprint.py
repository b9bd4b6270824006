"""Content fingerprints of arrays: which data a run, a cache or an audit was computed on.

A shared utility (numpy + torch only), used by the datasets (:attr:`debiaskit.data.BiasedDataset.fingerprint`),
the label tables, the leakage results and the model adapters; ``debiaskit.data`` re-exports it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

__all__ = ["fingerprint_arrays"]


def fingerprint_arrays(*arrays: Any) -> str:
    """SHA-256 (first 16 hex digits) over the raw bytes, dtype and shape of each array, in order."""
    h = hashlib.sha256()
    for a in arrays:
        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().contiguous().numpy()
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        # hash in chunks so memory-mapped arrays are not loaded whole
        flat = a.reshape(-1).view(np.uint8) if a.size else np.zeros(0, np.uint8)
        step = 1 << 26
        for i in range(0, flat.size, step):
            h.update(flat[i : i + step].tobytes())
    return h.hexdigest()[:16]
