"""Segment images, folders and videos; write the colouring and an overlay of each."""
import collections
import contextlib
import errno
import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch

from bisenet import distributed
from bisenet.data.cityscapes import colorize, generated_palette
from bisenet.data.io import DatasetError, read_image
from bisenet.data.transforms import build_eval_transform
from bisenet.inference import load_model, predict
from bisenet.outputs import OutputError, atomic_path, free_bytes, write_error, write_image
from bisenet.progress import progress_bar

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def overlay(image, color, alpha=0.5):
    """Blend an RGB image with its RGB colouring."""
    return cv2.addWeighted(image, 1 - alpha, color, alpha, 0)


class Segmenter:
    """The model of ``cfg`` with ``weights``, ready to segment RGB uint8 images; ``runtime``:
    ``load_model``'s ``fast``, ``precision`` and ``calib_images`` (the deployment paths). A
    ready ``model`` (any form ``load_model`` makes) is used as it is."""

    def __init__(self, cfg, weights, device=None, model=None, **runtime):
        self.device = distributed.resolve_device(device)
        self.model = model if model is not None else load_model(cfg, weights, self.device, **runtime)
        self.num_classes = cfg.model.num_classes
        self.protocol = cfg.eval.protocol  # the same single-scale prediction as evaluation's
        self.short_side = cfg.eval.short_side
        self.transform = build_eval_transform(cfg.data)
        self.palette = cfg.data.palette or generated_palette(cfg.model.num_classes)

    def __call__(self, image):
        """Train-id map (HxW uint8) of an RGB uint8 image."""
        tensor, _ = self.transform(image, np.zeros(image.shape[:2], np.uint8))
        x = tensor[None].to(self.device)
        if x.shape[-2] % 32 == 0 and x.shape[-1] % 32 == 0 and not self.short_side:
            # One pass at the image's own size in either protocol: the largest logit is the
            # largest softmax probability, and the softmax over 19 x H x W scores was a fifth of
            # an int8 pass at 1024x2048.
            with torch.no_grad():
                pred = self.model(x).max(dim=1).indices
        else:
            pred = predict(self.model, x, self.num_classes, protocol=self.protocol, short_side=self.short_side)
        return pred[0].cpu().numpy().astype(np.uint8)

    def color_and_overlay(self, image, pred=None):
        """The colouring and the overlay of an RGB image, from its train-id map ``pred`` if given."""
        color = colorize(self(image) if pred is None else pred, self.palette)
        return color, overlay(image, color)


def output_stems(paths):
    """The name each image's results are written under: its stem, or stem and extension
    (``x_jpg``) where two images share a stem, so that no result overwrites another."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    shared = {stem for stem in stems if stems.count(stem) > 1}
    names = [f"{stem}_{os.path.splitext(p)[1].lstrip('.').lower()}" if stem in shared else stem
             for stem, p in zip(stems, paths)]
    clashes = {n for n in names if names.count(n) > 1}
    if clashes:
        raise DatasetError(f"images {', '.join(p for p, n in zip(paths, names) if n in clashes)} would write results "
                           "under the same name; segment them from separate folders")
    return names


def segment_images(segmenter, paths, out_dir, progress=True, workers=2):
    """``<name>_color.png`` and ``<name>_overlay.png`` for each image (see ``output_stems``);
    returns the paths written.

    With ``workers`` > 0, reading the next images and writing the finished ones run in that many
    threads while the model works (decoding, encoding and the runtimes release the GIL); the
    files written are the same as with 0, which does one thing at a time. Each file is written
    atomically (``bisenet.outputs``): a full disk leaves no partial PNG."""
    jobs = list(zip(paths, output_stems(paths)))
    written = [os.path.join(out_dir, f"{stem}_{suffix}.png") for _, stem in jobs for suffix in ("color", "overlay")]

    def write(index, image, pred):
        for path, rgb in zip(written[2 * index: 2 * index + 2], segmenter.color_and_overlay(image, pred)):
            write_image(path, rgb)

    bar = progress_bar(total=len(jobs), enabled=progress and len(jobs) > 1, desc="demo")
    if workers == 0:
        for index, (path, _) in enumerate(jobs):
            image = read_image(path)
            write(index, image, segmenter(image))
            bar.update(1)
    else:
        with ThreadPoolExecutor(workers) as pool:
            reads = collections.deque(pool.submit(read_image, path) for path, _ in jobs[:workers])
            writes = collections.deque()
            for index in range(len(jobs)):
                image = reads.popleft().result()
                if index + workers < len(jobs):
                    reads.append(pool.submit(read_image, jobs[index + workers][0]))
                writes.append(pool.submit(write, index, image, segmenter(image)))
                while len(writes) > workers:  # bound the finished images held in memory
                    writes.popleft().result()
                    bar.update(1)
            for future in writes:
                future.result()
                bar.update(1)
    bar.close()
    return written


def segment_video(segmenter, source, out_dir, progress=True):
    """``<name>_color.mp4`` and ``<name>_overlay.mp4`` from a video file or a camera index. Each
    is written under a temporary name beside it (``bisenet.outputs.atomic_path``) and moved into
    place once complete and read back whole; on any failure the temporary files are removed."""
    capture = cv2.VideoCapture(int(source) if str(source).isdigit() else source)
    if not capture.isOpened():
        raise DatasetError(f"cannot open video {source} (missing file, unsupported codec or no such camera)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    name = f"camera{source}" if str(source).isdigit() else os.path.splitext(os.path.basename(source))[0]
    paths = [os.path.join(out_dir, f"{name}_{suffix}.mp4") for suffix in ("color", "overlay")]
    writers, frames = [], 0
    bar = progress_bar(total=total, enabled=progress, desc="video", unit="frame")
    log_level = cv2.utils.logging.getLogLevel()
    try:
        with contextlib.ExitStack() as files:
            temps = [files.enter_context(atomic_path(path)) for path in paths]
            files.callback(lambda: [writer.release() for writer in writers])  # before the files move
            # OpenCV warns once per frame it could not write; the check after the loop says it once.
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                if not writers:
                    size = (rgb.shape[1], rgb.shape[0])
                    writers = [cv2.VideoWriter(t, cv2.VideoWriter_fourcc(*"mp4v"), fps, size) for t in temps]
                    for writer, path, temp in zip(writers, paths, temps):
                        if not writer.isOpened():
                            raise _video_error(path, temp, "OpenCV cannot open an mp4v video writer there")
                for writer, out in zip(writers, segmenter.color_and_overlay(rgb)):
                    writer.write(cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
                frames += 1
                bar.update(1)
            for writer in writers:
                writer.release()
            if not writers:
                raise DatasetError(f"video {source} has no readable frame")
            for path, temp in zip(paths, temps):
                written = cv2.VideoCapture(temp)
                count = int(written.get(cv2.CAP_PROP_FRAME_COUNT)) if written.isOpened() else 0
                written.release()
                if count != frames:
                    raise _video_error(path, temp, f"{count} of its {frames} frames could be read back")
    finally:
        cv2.utils.logging.setLogLevel(log_level)
        bar.close()
        capture.release()
    return paths


def _video_error(path, temp, what):
    """The ``OutputError`` of an unfinished video: OpenCV reports no cause, so a disk with
    almost nothing left is taken for a full one."""
    if free_bytes(temp) < 2**20:
        return write_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    return OutputError(f"cannot write {path}: {what}")


def run_demo(segmenter, source, out_dir, progress=True):
    """Dispatch on ``source``: an image, a folder of images, a video file or a camera index."""
    if str(source).isdigit() or str(source).lower().endswith(VIDEO_EXTENSIONS):
        return segment_video(segmenter, source, out_dir, progress)
    if os.path.isdir(source):
        paths = sorted(os.path.join(source, n) for n in os.listdir(source) if n.lower().endswith(IMAGE_EXTENSIONS))
        if not paths:
            raise DatasetError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {source}")
        return segment_images(segmenter, paths, out_dir, progress)
    return segment_images(segmenter, [source], out_dir, progress)
