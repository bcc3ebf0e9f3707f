"""Optional preparation steps.

Cityscapes: ``*_labelTrainIds.png`` files and list files (bisenet reads labelIds directly, so
none of this is needed for training; it is for users who want pre-converted labels or the
reference implementation's list files). CamVid: the original 960x720 release's colour-coded
labels re-encoded as 11-class ids in SegNet's layout, which the CamVid configs read.
"""
import os
from multiprocessing import Pool

from bisenet.data import camvid
from bisenet.data.cityscapes import LABEL_MAP
from bisenet.data.dataset import scan_pairs
from bisenet.data.io import DatasetError, LabelDecoder, read_image
from bisenet.outputs import write_bytes, write_image, write_text
from bisenet.progress import progress_bar


def _write_train_ids(job):
    label_path, decoder = job
    return write_image(label_path.replace("_labelIds.png", "_labelTrainIds.png"), decoder(label_path))


def prepare_cityscapes(data_cfg, splits, workers=None, progress=True):
    """Write trainIds labels next to the labelIds ones and, per split, ``<split>.txt`` (image,
    labelIds) and ``<split>_trainids.txt`` (image, labelTrainIds) under the root. Returns the
    list files written."""
    decoder = LabelDecoder(19, 255, LABEL_MAP)
    written = []
    for split in splits:
        pairs = scan_pairs(data_cfg, split)
        jobs = [(label, decoder) for _, label in pairs]
        with Pool(workers or os.cpu_count()) as pool:
            outputs = list(progress_bar(pool.imap(_write_train_ids, jobs, chunksize=8), progress, total=len(jobs),
                                        desc=f"trainIds {split}"))
        for name, labels in ((f"{split}.txt", [label for _, label in pairs]), (f"{split}_trainids.txt", outputs)):
            relative = [(os.path.relpath(image, data_cfg.root), os.path.relpath(label, data_cfg.root))
                        for (image, _), label in zip(pairs, labels)]
            written.append(write_text(os.path.join(data_cfg.root, name),
                                      "".join(f"{image},{label}\n" for image, label in relative)))
    return written


def camvid_splits(segnet_root, splits=("train", "val", "test")):
    """``{split: [file names]}`` from a folder in SegNet's CamVid layout (``<root>/<split>/*.png``):
    the standard 367 / 101 / 233 split, by name."""
    result = {}
    for split in splits:
        folder = os.path.join(segnet_root, split)
        if not os.path.isdir(folder):
            raise DatasetError(f"no folder {folder}: --split-from must be SegNet's CamVid folder (train/, val/, test/)")
        result[split] = sorted(name for name in os.listdir(folder) if name.endswith(".png"))
    return result


def _convert_camvid(job):
    image_path, label_path, image_out, label_out = job
    ids, unknown = camvid.encode_colour_label(read_image(label_path))
    if unknown:
        raise DatasetError(f"{label_path} holds colours that are not CamVid's: {unknown[:5]}; is it a *_L.png of "
                           "LabelApproved_full?")
    if read_image(image_path).shape[:2] != ids.shape:
        raise DatasetError(f"{image_path} and {label_path} differ in size")
    with open(image_path, "rb") as f:
        write_bytes(image_out, f.read())
    return write_image(label_out, ids)


def prepare_camvid(images_dir, labels_dir, out_root, splits, workers=None, progress=True):
    """CamVid's original release (``701_StillsRaw_full/<name>.png`` and the colour-coded
    ``LabelApproved_full/<stem>_L.png``) -> SegNet's layout at full resolution under
    ``out_root``: ``<split>/<name>.png`` (the image, copied) and ``<split>annot/<name>.png``
    (11-class ids, void = 11). ``splits``: ``{split: [file names]}``. Returns the number of
    pairs written per split."""
    jobs, counts, missing = [], {}, []
    for split, names in splits.items():
        counts[split] = len(names)
        for name in names:
            stem = os.path.splitext(name)[0]
            image, label = os.path.join(images_dir, name), os.path.join(labels_dir, stem + "_L.png")
            missing += [path for path in (image, label) if not os.path.isfile(path)]
            jobs.append((image, label, os.path.join(out_root, split, name),
                         os.path.join(out_root, split + "annot", stem + ".png")))
    if missing:
        raise DatasetError(f"{len(missing)} file(s) of the split are missing, e.g. {', '.join(missing[:3])}")
    with Pool(workers or os.cpu_count()) as pool:
        for _ in progress_bar(pool.imap_unordered(_convert_camvid, jobs, chunksize=4), progress, total=len(jobs),
                              desc="camvid"):
            pass
    return counts
