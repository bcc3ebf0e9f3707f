"""``python -m bisenet TOOL [ARGS]``, the same as the ``bisenet`` command; also what torchrun
runs for an installed package: ``torchrun --nproc_per_node=N -m bisenet train --config ...``."""
from bisenet.cli import command

if __name__ == "__main__":
    command()
