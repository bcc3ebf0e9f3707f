"""COCO-Stuff-164k: the 118k train / 5k val images of COCO 2017 with the stuffthingmaps labels.

The layout read directly (the reference implementation's, with COCO's own folder names)::

    {root}/images/train2017/000000000009.jpg   {root}/labels/train2017/000000000009.png
    {root}/images/val2017/...                  {root}/labels/val2017/...

Labels (``stuffthingmaps_trainval2017.zip``) are single-channel PNGs of 0-based ids 0-181 (COCO
category id - 1: 0-90 things, 91-181 stuff) and 255 for unlabelled pixels. Eleven thing ids of
COCO's 91 were never annotated; they are dropped and the other 171 renumbered in order, as the
reference does.
"""
from bisenet.data.palettes import bit_colormap

# COCO-Stuff's 182 names by 0-based label id (labels.txt of the COCO-Stuff release, id - 1).
RAW_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep",
    "cow", "elephant", "bear", "zebra", "giraffe", "hat", "backpack", "umbrella", "shoe", "eye glasses",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
    "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "plate", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
    "donut", "cake", "chair", "couch", "potted plant", "bed", "mirror", "dining table", "window", "desk",
    "toilet", "door", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven",
    "toaster", "sink", "refrigerator", "blender", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush", "hair brush",
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage", "cardboard", "carpet",
    "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter", "cupboard", "curtain",
    "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble", "floor-other", "floor-stone", "floor-tile",
    "floor-wood", "flower", "fog", "food-other", "fruit", "furniture-other", "grass", "gravel", "ground-other",
    "hill", "house", "leaves", "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin",
    "net", "paper", "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield", "railing",
    "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf", "sky-other",
    "skyscraper", "snow", "solid-other", "stairs", "stone", "straw", "structural-other", "table", "tent",
    "textile-other", "towel", "tree", "vegetable", "wall-brick", "wall-concrete", "wall-other", "wall-panel",
    "wall-stone", "wall-tile", "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood",
)
# Thing ids that COCO defines but never annotated (street sign, hat, shoe, eye glasses, plate,
# mirror, window, desk, door, blender, hair brush).
UNANNOTATED = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
KEPT = tuple(raw for raw in range(len(RAW_NAMES)) if raw not in UNANNOTATED)

CLASS_NAMES = tuple(RAW_NAMES[raw] for raw in KEPT)
# Label id -> train id for every value a stuffthingmaps PNG holds; the unannotated ids are not
# listed, so a file holding one is reported instead of trained on as a neighbouring class.
LABEL_MAP = {**{raw: train_id for train_id, raw in enumerate(KEPT)}, 255: 255}
PALETTE = tuple(bit_colormap(len(RAW_NAMES) + 1)[raw + 1] for raw in KEPT)
# RGB on [0, 1], the reference's to the digit: its weights expect exactly these.
MEAN = (0.46962251, 0.4464104, 0.40718787)
STD = (0.27469736, 0.27012361, 0.28515933)

LAYOUT = dict(root="datasets/coco", image_dir="images/{split}", label_dir="labels/{split}", image_suffix=".jpg",
              label_suffix=".png", train_split="train2017", val_split="val2017")

DATASET_HINT = (
    "COCO-Stuff goes in {root}: images/train2017 and images/val2017 from COCO 2017 (train2017.zip, val2017.zip "
    "at https://cocodataset.org), labels/train2017 and labels/val2017 from stuffthingmaps_trainval2017.zip "
    "(https://github.com/nightrome/cocostuff); see datasets/README.md."
)


def diagnose(raw_values, rgb_labels):
    """Hints for the typical mistakes, from the raw label values seen over the dataset and the
    paths of colour (3-channel) labels."""
    hints = []
    if 183 in raw_values:
        hints.append("labels hold 183 ('other'): these are the stuff-only maps (stuff_trainval2017_pixelmaps: "
                     "92-182, and 0 for every thing); use stuffthingmaps_trainval2017.zip, which labels things too")
    if 182 in raw_values and 183 not in raw_values:
        hints.append("labels hold 182, one past the last COCO-Stuff id (181): they look 1-based (0 = unlabelled, "
                     "as in COCO-Stuff-10k's .mat files); the stuffthingmaps PNGs are 0-based with 255 unlabelled")
    if rgb_labels:
        hints.append(f"{len(rgb_labels)} label(s) are 3-channel colour images, e.g. {rgb_labels[0]}: COCO-Stuff "
                     "labels are single-channel PNGs of ids. A label read as RGB and saved again (cv2.imread without "
                     "IMREAD_UNCHANGED) or a colourised visualisation is not a label; take the PNGs of "
                     "stuffthingmaps_trainval2017.zip as they are")
    return hints
