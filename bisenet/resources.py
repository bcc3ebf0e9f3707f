"""Where the files of the toolbox that are not modules of the package are: the configs and the
tools.

In a source checkout (and an editable install, which runs the checkout) they are the checkout's
``configs/`` and ``tools/`` beside ``bisenet/``, where the README and users expect them. An
installed wheel has no checkout beside it, so setup.py ships both inside the package, as
``bisenet/configs`` and ``bisenet/tools``; whichever exists is used, the package's first.
"""
import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _folder(name):
    inside = os.path.join(PACKAGE_DIR, name)
    return inside if os.path.isdir(inside) else os.path.join(os.path.dirname(PACKAGE_DIR), name)


CONFIG_DIR = _folder("configs")
TOOLS_DIR = _folder("tools")
