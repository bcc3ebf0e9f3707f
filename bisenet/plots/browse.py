"""What the model is fed: augmented samples beside their labels, as grid PNGs.

Each sample is a cell of the grid: the image (de-normalised with ``data.mean`` / ``data.std``)
on the left, its label on the right in the dataset's palette with the ignore region striped in
two greys that are not palette colours (``hatch_colors``), and under them the sample's file and
the classes present (a swatch, the name and the share of the sample's pixels, largest first).

Panels are the pipeline's arrays scaled by an integer factor without interpolation: a pixel is
k x k picture pixels, or, for an array longer than ``panel_size``, every k-th pixel is kept. So
a label panel holds exactly the palette colours of its classes (all of them unless it was
shrunk; the names under it always count every pixel). The grid is composed in numpy; matplotlib
only writes the text. ``BrowseGrid`` records where every panel is.

The training split shows the samples of the training run itself: ``build_train_loader``'s
sampler, per-sample seeds and transforms, so with the default grid size the grid of step s is the
batch that step s trains on (``train.batch_size`` images, over all processes), and another
``train.seed`` shows another run's. The validation split shows the images in order through the
evaluation transform.
"""
import math
import os
from dataclasses import dataclass, field
from typing import List, Tuple

import cv2
import numpy as np

from bisenet.data.cityscapes import generated_palette
from bisenet.data.loaders import build_dataset
from bisenet.data.samplers import InfiniteSampler
from bisenet.plots import default_style, figure, save, short_name

MARGIN = 12  # pixels around and between cells
GAP = 4  # between the image and the label panel of a sample
TITLE_HEIGHT = 28
LINE_HEIGHT = 16
FONT_SIZE = 9  # points at 100 dpi: 12.5-pixel em
# A monospaced font (shipped with matplotlib) lets the captions be laid out, and wrapped, before
# anything is drawn.
FONT = "DejaVu Sans Mono"
SWATCH = 10
ITEM_SPACING = 14
BACKGROUND = 255
TEXT_COLOR = "black"


def hatch_colors(palette):
    """Two greys, dark and light, that are no palette colour: the ignore region's stripes."""
    used = {tuple(int(c) for c in rgb) for rgb in palette}
    pick = [next(g for g in levels if (g, g, g) not in used)
            for levels in ((56, 48, 64, 40, 72, 32, 80, 24), (200, 208, 192, 216, 184, 224, 176, 232))]
    return tuple((g, g, g) for g in pick)


def color_label(label, palette, hatch):
    """RGB picture of a train-id map: palette colours, and diagonal stripes of the two ``hatch``
    greys where the label is not a class (the ignore index)."""
    palette = np.asarray(palette, dtype=np.uint8)
    valid = (label >= 0) & (label < len(palette))
    rgb = palette[np.where(valid, label, 0)]
    rows, cols = np.indices(label.shape)
    stripes = np.asarray(hatch, dtype=np.uint8)[((rows + cols) // 3) % 2]
    rgb[~valid] = stripes[~valid]
    return rgb


def denormalize(image, mean, std):
    """A normalised CxHxW float tensor back to the HxWx3 uint8 RGB it was made from."""
    array = image.detach().cpu().numpy().transpose(1, 2, 0)
    array = array * (np.asarray(std, dtype=np.float32) * 255) + np.asarray(mean, dtype=np.float32) * 255
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def display_factor(height, width, panel_size):
    """(up, down): a panel is the array repeated ``up`` times, or every ``down``-th pixel of it,
    so that its longer side is as long as possible up to ``panel_size``."""
    longest = max(height, width)
    if longest > panel_size:
        return 1, math.ceil(longest / panel_size)
    return max(1, panel_size // longest), 1


def scale_panels(image, label, panel_size):
    """Image and label at display size, by the same integer factor (no new label values)."""
    up, down = display_factor(*label.shape, panel_size)
    if up > 1:
        return (np.repeat(np.repeat(image, up, axis=0), up, axis=1),
                np.repeat(np.repeat(label, up, axis=0), up, axis=1))
    if down > 1:
        label = label[::down, ::down]
        return cv2.resize(image, (label.shape[1], label.shape[0]), interpolation=cv2.INTER_AREA), label
    return image, label


def class_shares(label, num_classes):
    """[(class id, share of the pixels)] of the classes present, largest first; then
    (None, share) for the ignore region when there is one."""
    valid = (label >= 0) & (label < num_classes)
    counts = np.bincount(label[valid].ravel(), minlength=num_classes)
    total = label.size
    shares = [(int(k), counts[k] / total) for k in np.argsort(-counts, kind="stable") if counts[k]]
    ignored = int((~valid).sum())
    return shares + ([(None, ignored / total)] if ignored else [])


def char_width():
    """Pixels per character of the caption font at 100 dpi as Agg draws it: hinting rounds the
    advance (8 pixels for 9-point DejaVu Sans Mono, not the nominal 7.5)."""
    with default_style("browsing a dataset"):
        from matplotlib.backends.backend_agg import RendererAgg
        from matplotlib.font_manager import FontProperties

        text = "x" * 100
        width, _, _ = RendererAgg(100, 100, 100).get_text_width_height_descent(
            text, FontProperties(family=FONT, size=FONT_SIZE), ismath=False)
    return width / len(text)


def _percent(share):
    value = 100 * share
    return "<0.1%" if value < 0.05 else f"{value:.0f}%" if value >= 9.95 else f"{value:.1f}%"


def caption_items(shares, class_names, width, char):
    """Where each (class id, text) item of the caption goes in a strip ``width`` pixels wide
    (``char`` pixels per character): [(line, x, class id, text)], flowing left to right."""
    items, line, x = [], 0, 0
    limit = max(4, int((width - SWATCH - 4) / char))
    for class_id, share in shares:
        name = "ignore" if class_id is None else class_names[class_id]
        text = short_name(name, limit - len(_percent(share)) - 1) + " " + _percent(share)
        item_width = SWATCH + 4 + math.ceil(len(text) * char)
        if x and x + item_width > width:
            line, x = line + 1, 0
        items.append((line, x, class_id, text))
        x += item_width + ITEM_SPACING
    return items


@dataclass
class BrowsedSample:
    title: str  # the file, and where in the stream the sample is
    image: np.ndarray  # display size, HxWx3 uint8
    label: np.ndarray  # display size, HxW train ids (the ignore index where ignored)
    shares: List[Tuple[object, float]]  # class_shares of the full-size label


@dataclass
class GridLayout:
    """Geometry of a grid: ``rows`` x ``cols`` cells of ``panel_height`` x (2 panels + GAP) plus
    a caption of ``caption_lines`` lines, after a title strip; at least ``min_width`` wide."""
    cols: int
    rows: int
    panel_height: int
    panel_width: int
    caption_lines: int
    min_width: int = 0

    @property
    def cell_width(self):
        return 2 * self.panel_width + GAP

    @property
    def cell_height(self):
        return self.panel_height + 4 + self.caption_lines * LINE_HEIGHT

    @property
    def size(self):
        """(height, width) of the picture."""
        return (TITLE_HEIGHT + self.rows * (self.cell_height + MARGIN) + MARGIN,
                max(self.cols * (self.cell_width + MARGIN) + MARGIN, self.min_width))

    def cell_origin(self, k):
        """(top, left) of cell ``k``, row by row."""
        row, col = divmod(k, self.cols)
        return TITLE_HEIGHT + MARGIN + row * (self.cell_height + MARGIN), MARGIN + col * (self.cell_width + MARGIN)

    def panel_boxes(self, k):
        """(top, left) of the image panel and of the label panel of cell ``k``."""
        top, left = self.cell_origin(k)
        return (top, left), (top, left + self.panel_width + GAP)


@dataclass
class BrowseGrid:
    path: str
    layout: GridLayout
    # Per sample: {"title", "image_box", "label_box"}, boxes as (top, left, height, width).
    samples: List[dict] = field(default_factory=list)


def draw_grid(samples, title, path, class_names, palette, hatch, per_grid, char):
    """Compose ``samples`` (``BrowsedSample``) into a grid of ``per_grid`` cells and write it;
    ``char``: the caption font's pixels per character."""
    # A grid of fewer samples (the last one, or --num below the batch) shrinks to them.
    per_grid = min(per_grid, len(samples))
    cols = math.ceil(math.sqrt(per_grid))
    panel_height = max(s.label.shape[0] for s in samples)
    panel_width = max(max(s.label.shape[1] for s in samples), 8 * SWATCH)
    captions = [caption_items(s.shares, class_names, 2 * panel_width + GAP, char) for s in samples]
    lines = 1 + max(items[-1][0] + 1 if items else 0 for items in captions)
    layout = GridLayout(cols, math.ceil(per_grid / cols), panel_height, panel_width, lines,
                        2 * MARGIN + math.ceil(len(title) * char))
    height, width = layout.size
    canvas = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    texts = [(MARGIN, TITLE_HEIGHT / 2, title)]
    grid = BrowseGrid(path, layout)
    for k, (sample, items) in enumerate(zip(samples, captions)):
        (top, left), (label_top, label_left) = layout.panel_boxes(k)
        h, w = sample.label.shape
        canvas[top:top + h, left:left + w] = sample.image
        canvas[label_top:label_top + h, label_left:label_left + w] = color_label(sample.label, palette, hatch)
        grid.samples.append({"title": sample.title, "image_box": (top, left, h, w),
                             "label_box": (label_top, label_left, h, w)})
        caption_top = top + panel_height + 4
        title_limit = int(layout.cell_width / char)
        texts.append((left, caption_top + LINE_HEIGHT / 2, short_name(sample.title, title_limit)))
        for line, x, class_id, text in items:
            y = caption_top + (line + 1) * LINE_HEIGHT
            swatch_top = y + (LINE_HEIGHT - SWATCH) // 2
            swatch = np.full((SWATCH, SWATCH), -1 if class_id is None else class_id)
            canvas[swatch_top:swatch_top + SWATCH, left + x:left + x + SWATCH] = \
                color_label(swatch, palette, hatch)
            texts.append((left + x + SWATCH + 4, y + LINE_HEIGHT / 2, text))
    with figure("browsing a dataset", figsize=(width / 100, height / 100), dpi=100) as fig:
        from matplotlib.transforms import IdentityTransform

        # 1:1 pixels from the top-left corner: the panels are written, not resampled.
        fig.figimage(canvas, 0, 0, origin="upper")
        for x, y, text in texts:
            fig.text(x, height - y, text, transform=IdentityTransform(), fontsize=FONT_SIZE,
                     family=FONT, color=TEXT_COLOR, ha="left", va="center")
        save(fig, path, dpi=100, tight=False)
    return grid


def pipeline_samples(cfg, split, num, start_step=0):
    """Yields (position, sample) of the config's own pipeline, one at a time (full-size samples
    are large): for ``split="train"`` the training stream from step ``start_step`` (the
    trainer's sampler and per-sample seeds, whatever the number of processes or workers), for
    ``"val"`` the first ``num`` validation images."""
    train = split == "train"
    dataset = build_dataset(cfg.data, train=train, num_classes=cfg.model.num_classes)
    if train:
        stream = iter(InfiniteSampler(len(dataset), cfg.train.seed, start=start_step * cfg.train.batch_size))
        for _ in range(num):
            index, (_, position) = next(stream)
            yield position, dataset[(index, (cfg.train.seed, position))]
    else:
        for index in range(min(num, len(dataset))):
            yield index, dataset[index]


def browse(cfg, out_dir, split="train", num=16, per_grid=None, start_step=0, panel_size=512):
    """Write ``num`` samples of ``split`` (``"train"`` or ``"val"``) as grid PNGs of
    ``per_grid`` samples (default: the training batch, so that a training grid is one step)
    into ``out_dir``; returns the ``BrowseGrid`` of each."""
    data = cfg.data
    num_classes = cfg.model.num_classes
    palette = data.palette or generated_palette(num_classes)
    hatch = hatch_colors(palette)
    char = char_width()
    batch = cfg.train.batch_size
    per_grid = per_grid or batch
    samples = []
    for position, sample in pipeline_samples(cfg, split, num, start_step):
        label = sample["label"].numpy()
        image = denormalize(sample["image"], data.mean, data.std)
        shares = class_shares(label, num_classes)
        image, label = scale_panels(image, label, panel_size)
        where = f"step {position // batch} #{position % batch}" if split == "train" else f"image {position}"
        name = os.path.basename(sample["path"])
        if data.image_suffix and name.endswith(data.image_suffix) and name != data.image_suffix:
            name = name[:-len(data.image_suffix)]  # the part that tells files apart
        samples.append((position, BrowsedSample(f"{where}: {name}", image, label, shares)))
    grids = []
    for first in range(0, len(samples), per_grid):
        chunk = samples[first:first + per_grid]
        low, high = chunk[0][0], chunk[-1][0]
        if split == "train" and per_grid == batch and low % batch == 0:
            name = f"train_step{low // batch:06d}.png"
            title = f"train: the batch of step {low // batch} (samples {low}-{high}), train.seed={cfg.train.seed}"
        else:
            name = f"{split}_{low:06d}-{high:06d}.png"
            title = (f"train: samples {low}-{high} of the training stream, train.seed={cfg.train.seed}"
                     if split == "train" else f"val: images {low}-{high}")
        grids.append(draw_grid([s for _, s in chunk], title, os.path.join(out_dir, name), data.class_names,
                               palette, hatch, per_grid, char))
    return grids
