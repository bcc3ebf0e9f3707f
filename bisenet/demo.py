"""Segment images and write the official-palette colouring and an overlay."""
import os

import cv2
import numpy as np

import bisenet
from bisenet import distributed
from bisenet.data.cityscapes import colorize, generated_palette
from bisenet.data.io import read_image
from bisenet.data.transforms import build_eval_transform
from bisenet.inference import predict


def overlay(image, color, alpha=0.5):
    """Blend an RGB image with its RGB colouring."""
    return cv2.addWeighted(image, 1 - alpha, color, alpha, 0)


def segment(model, image, cfg, device):
    """trainId map (HxW uint8) of an RGB uint8 image."""
    tensor, _ = build_eval_transform(cfg.data)(image, np.zeros(image.shape[:2], np.uint8))
    pred = predict(model, tensor[None].to(device), cfg.model.num_classes)
    return pred[0].cpu().numpy().astype(np.uint8)


def segment_image_file(cfg, weights, image_path, out_dir, device=None):
    """Write ``<stem>_color.png`` and ``<stem>_overlay.png`` into ``out_dir``; returns their paths."""
    device = distributed.resolve_device(device)
    model = bisenet.build_model(cfg)
    bisenet.load_weights(model, weights)
    model.to(device).eval()
    image = read_image(image_path)
    color = colorize(segment(model, image, cfg, device), cfg.data.palette or generated_palette(cfg.model.num_classes))
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(image_path))[0]
    paths = [os.path.join(out_dir, f"{stem}_color.png"), os.path.join(out_dir, f"{stem}_overlay.png")]
    for path, rgb in zip(paths, (color, overlay(image, color))):
        cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return paths
