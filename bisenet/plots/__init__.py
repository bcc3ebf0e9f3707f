"""Pictures for debugging by eye: what the model is fed (``browse``), how it scores
(``evaluation``) and what a dataset holds (``statistics``), as plain matplotlib PNGs.

matplotlib is the optional ``plot`` extra: ``figure`` says which pip line installs it. Figures
are made without pyplot (no global state, no backend switch in a user's notebook) under
matplotlib's default style, so that a user's matplotlibrc cannot change them and the same input
gives the same bytes.
"""
import contextlib
import io

from bisenet.errors import require
from bisenet.outputs import write_bytes


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
    """Write ``fig`` as a PNG, atomically (``bisenet.outputs``). ``tight`` grows the canvas to the
    labels, so that long class names are never clipped. PNGs carry no date, so equal figures
    give equal bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png", bbox_inches="tight" if tight else None, pad_inches=0.1,
                facecolor="white")
    return write_bytes(path, buffer.getvalue())


def short_name(name, limit):
    """``name`` cut to ``limit`` characters with an ellipsis in the middle (both ends tell
    classes and files apart)."""
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return name[:head] + "…" + name[len(name) - (limit - 1 - head):]
