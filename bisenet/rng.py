"""The state of every random generator a run draws from (Python, numpy, torch on the CPU and on
CUDA), captured as plain types for a checkpoint and restored from one, so that a resumed run
draws what the uninterrupted one would have."""
import random

import numpy as np
import torch


def capture_rng_state():
    """Python, numpy and torch (CPU and CUDA) generator states, as plain types."""
    numpy_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state):
    """Put back a ``capture_rng_state`` (CUDA's only where CUDA is available)."""
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
