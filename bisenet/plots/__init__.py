"""Pictures for debugging by eye: what the model is fed (``browse``), how it scores
(``evaluation``) and what a dataset holds (``statistics``), as plain matplotlib PNGs.

matplotlib is the optional ``plot`` extra: ``figure`` says which pip line installs it. Figures
are made without pyplot (no global state, no backend switch in a user's notebook) under
matplotlib's default style, so that a user's matplotlibrc cannot change them and the same input
gives the same bytes.
"""
import contextlib
import os

from bisenet.errors import require


def require_matplotlib(feature):
    """matplotlib, or a ``MissingExtraError`` with the install line. Tools call it before long
    work, so that a missing extra is said at once rather than after an hour of evaluation."""
    return require("matplotlib", "plot", feature)


@contextlib.contextmanager
def default_style(feature):
    """matplotlib's default style for the ``with`` block."""
    require_matplotlib(feature)
    import matplotlib.style

    with matplotlib.style.context("default"):
        yield


@contextlib.contextmanager
def figure(feature, **kwargs):
    """A ``matplotlib.figure.Figure(**kwargs)`` under the default style; save it inside the
    ``with`` block (some style settings are read when drawing)."""
    with default_style(feature):
        from matplotlib.figure import Figure

        yield Figure(**kwargs)


def save(fig, path, dpi=100, tight=True):
    """Write ``fig`` as a PNG. ``tight`` grows the canvas to the labels, so that long class
    names are never clipped. PNGs carry no date, so equal figures give equal bytes."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png", bbox_inches="tight" if tight else None, pad_inches=0.1,
                facecolor="white")
    return path


def short_name(name, limit):
    """``name`` cut to ``limit`` characters with an ellipsis in the middle (both ends tell
    classes and files apart)."""
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return name[:head] + "…" + name[len(name) - (limit - 1 - head):]
