"""Reading images and labels, the one way every part of the toolbox does it.

Images become RGB uint8 whatever they were stored as (grayscale, RGBA, 16-bit). Labels are read
unchanged (no colour conversion, no 16-bit scaling, palette PNGs by their indices), mapped to
train ids through a lookup table, and checked in the same pass: a value that is neither a
class nor the ignore index stops with the file, the values and the fix.
"""
import os

import cv2
import numpy as np
from PIL import Image

from bisenet.errors import UserError


class DatasetError(UserError):
    """A dataset file or folder that cannot be used; the message names it and the fix."""


class ColourLabelError(DatasetError):
    """A label stored as a colour image instead of single-channel ids."""


def describe(exc):
    """The message of a DatasetError, also when a DataLoader worker re-raised it with its
    traceback glued in front."""
    text = str(exc)
    marker = "DatasetError: "
    return text[text.rindex(marker) + len(marker):].strip() if marker in text else text


SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"BM": "BMP", b"GIF8": "GIF",
              b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"RIFF": "WebP"}
END_MARKERS = {"PNG": b"IEND", "JPEG": b"\xff\xd9"}


def _image_format(head):
    """The image format the first bytes announce, or None."""
    return next((kind for signature, kind in SIGNATURES.items() if head.startswith(signature)), None)


def _check_complete(path):
    """Catch files that are no image at all (a web page saved as .png) or cut short (a failed copy
    or download): decoders often return a partial image with only a warning. A PNG or JPEG is
    judged by its content, whatever its extension says."""
    size = os.path.getsize(path)
    if size == 0:
        raise DatasetError(f"{path} is empty (0 bytes); copy or download it again")
    with open(path, "rb") as f:
        head = f.read(64)
        f.seek(max(0, size - 32))
        tail = f.read()
    kind = _image_format(head)
    if kind is None and os.path.splitext(path)[1].lower() in (".png", ".jpg", ".jpeg"):
        try:
            head.decode("utf-8")
            what = "a text file" + (" (an HTML page: a failed download?)" if b"<html" in head.lower() else "")
        except UnicodeDecodeError:
            what = "not an image file (no image format's signature)"
        raise DatasetError(f"{path} is {what}, not an image; replace it with the real image")
    if kind in END_MARKERS and END_MARKERS[kind] not in tail:
        raise DatasetError(f"{path} is truncated (its end-of-image marker is missing); copy or download it again")


def _read_unchanged(path, what):
    if not os.path.isfile(path):
        raise DatasetError(f"{what} {path} does not exist")
    _check_complete(path)
    array = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise DatasetError(f"cannot decode {what} {path} (not an image file cv2 can read)")
    return array


def read_image(path):
    """An RGB uint8 HxWx3 image."""
    image = _read_unchanged(path, "image")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)  # 16-bit photographs: keep the high byte
    elif image.dtype != np.uint8:
        raise DatasetError(f"image {path} has pixel type {image.dtype}; expected 8- or 16-bit")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)  # alpha is dropped, not blended
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label_raw(path):
    """A label's stored values as an HxW uint8 array: single-channel 8-bit PNGs as they are,
    palette PNGs by their indices, 16-bit ones when every value fits in 8 bits."""
    label = _read_unchanged(path, "label")
    if label.ndim == 3:
        # cv2 expands palette images to colour; their indices are the labels.
        with Image.open(path) as image:
            if image.mode != "P":
                if label.shape[2] >= 3 and (label[..., 0] == label[..., 1]).all() and \
                        (label[..., 1] == label[..., 2]).all():
                    raise ColourLabelError(
                        f"label {path} is a {image.mode} image whose three channels are equal: a label of ids saved "
                        "as colour. Save one channel (e.g. cv2.imwrite(path, cv2.imread(path)[:, :, 0])); labels "
                        "must be single-channel images of class ids")
                raise ColourLabelError(
                    f"label {path} is a {image.mode} colour image; labels must be single-channel images of class "
                    "ids (or palette PNGs). Convert colours to ids first, e.g. with a palette lookup")
            label = np.asarray(image)
    if label.dtype == np.uint16:
        if label.max(initial=0) > 255:
            raise DatasetError(f"label {path} is 16-bit with values up to {label.max()}; class ids must be 0-255 "
                               "(is this an instanceIds file instead of a labelIds one?)")
        label = label.astype(np.uint8)
    elif label.dtype != np.uint8:
        raise DatasetError(f"label {path} has pixel type {label.dtype}; expected 8-bit class ids")
    return label


class LabelDecoder:
    """Raw label values -> train ids through a 256-entry lookup table, checked on the way.

    ``label_map`` lists every valid raw value and its train id (Cityscapes: labelIds ->
    trainIds, unevaluated ids -> ignore). Empty means the raw values are the train ids: valid
    ones are ``[0, num_classes)`` and ``ignore_index``.
    """

    INVALID = -1

    def __init__(self, num_classes, ignore_index=255, label_map=None):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.label_map = dict(label_map or {})
        table = np.full(256, self.INVALID, dtype=np.int16)
        if self.label_map:
            for raw, train_id in self.label_map.items():
                table[raw] = train_id
        else:
            table[:num_classes] = np.arange(num_classes)
            if 0 <= ignore_index < 256:
                table[ignore_index] = ignore_index
        self.table = table
        self.valid = table != self.INVALID
        # Invalid raw values map to a sentinel no valid pixel can have, so one cv2.LUT both
        # maps and marks them; a scan for the sentinel is the whole check.
        used = set(table[self.valid].tolist())
        free = [v for v in range(255, -1, -1) if v not in used]
        self.sentinel = free[0] if free else None
        self.lookup = np.where(self.valid, table, self.sentinel if free else ignore_index).astype(np.uint8)
        # The way back, for writing predictions in the dataset's own label format (Cityscapes:
        # labelIds); the first raw value of each train id wins.
        self.inverse = np.arange(256, dtype=np.uint8)
        if self.label_map:
            self.inverse[:] = 0
            for raw, train_id in sorted(self.label_map.items(), reverse=True):
                if train_id < num_classes:
                    self.inverse[train_id] = raw

    def encode(self, train_ids):
        """Train ids -> raw label values (the inverse of the label map)."""
        return self.inverse[np.asarray(train_ids, dtype=np.uint8)]

    def __call__(self, path):
        raw = read_label_raw(path)
        mapped = cv2.LUT(raw, self.lookup)
        invalid = (mapped == self.sentinel).any() if self.sentinel is not None else not self.valid[raw].all()
        if invalid:  # only a failing file pays for finding the values
            bad = sorted(set(np.unique(raw).tolist()) - set(np.flatnonzero(self.valid).tolist()))
            raise DatasetError(f"label {path} holds value(s) {bad[:10]} that are {self.expected()}. "
                               f"{self.fix()}")
        return mapped

    def expected(self):
        if self.label_map:
            return f"not in data.label_map (which lists {len(self.label_map)} raw values)"
        return f"neither a class id (0-{self.num_classes - 1}) nor the ignore index {self.ignore_index}"

    def fix(self):
        if self.label_map:
            return ("Add them to data.label_map (raw value -> train id, or -> the ignore index), or check that the "
                    "files are the kind the map is for (e.g. Cityscapes *_labelIds.png, not *_labelTrainIds.png).")
        return ("Set model.num_classes / data.class_names to cover them, map them with data.label_map, or set "
                "data.ignore_index to the value your dataset uses for unlabelled pixels.")
