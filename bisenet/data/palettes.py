"""Colour tables for datasets whose release defines none."""


def bit_colormap(n):
    """The PASCAL VOC colour map: index k's bits spread over the high bits of R, G and B, so
    that neighbouring ids get clearly different colours. Entry 0 is black."""
    colours = []
    for index in range(n):
        r = g = b = 0
        for shift in range(7, -1, -1):
            r |= ((index >> 0) & 1) << shift
            g |= ((index >> 1) & 1) << shift
            b |= ((index >> 2) & 1) << shift
            index >>= 3
        colours.append((r, g, b))
    return tuple(colours)
