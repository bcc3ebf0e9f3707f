"""Datasets: the known datasets' tables (cityscapes, cocostuff, ade20k, camvid, palettes; catalog
names them), reading files (io, dataset), augmentation (transforms), sampling (samplers), the
loaders built from the config (loaders), calibration images (calibration), and the dataset tools
(check, prepare, synthetic).

This file imports nothing, so that the config can take its defaults from the tables without
loading the datasets' readers (which import the config)."""
