"""Optional Cityscapes preparation: ``*_labelTrainIds.png`` files and list files.

bisenet reads labelIds directly, so none of this is needed for training; it is for users who
want pre-converted labels or the reference implementation's list files.
"""
import os
from multiprocessing import Pool

import cv2
from tqdm import tqdm

from bisenet.data.cityscapes import LABEL_MAP
from bisenet.data.dataset import scan_pairs
from bisenet.data.io import LabelDecoder


def _write_train_ids(job):
    label_path, decoder = job
    out = label_path.replace("_labelIds.png", "_labelTrainIds.png")
    if not cv2.imwrite(out, decoder(label_path)):
        raise OSError(f"could not write {out}")
    return out


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
            outputs = list(tqdm(pool.imap(_write_train_ids, jobs, chunksize=8), total=len(jobs),
                                desc=f"trainIds {split}", disable=not progress))
        for name, labels in ((f"{split}.txt", [label for _, label in pairs]), (f"{split}_trainids.txt", outputs)):
            path = os.path.join(data_cfg.root, name)
            with open(path, "w") as f:
                for (image, _), label in zip(pairs, labels):
                    f.write(f"{os.path.relpath(image, data_cfg.root)},{os.path.relpath(label, data_cfg.root)}\n")
            written.append(path)
    return written
