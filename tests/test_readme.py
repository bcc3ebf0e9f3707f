"""The README's commands, and those of the docs/ pages it links, are a contract: every command
they show runs here, in their order (the README, then the pages in ``PAGES``' order), as a user
runs it (a shell in a project folder), on tiny data with the overrides that keep it tiny. A
command this file does not know, or one that fails, fails the suite.

The project folder is a sandbox: the repository's configs and tools, a small dataset in each
official layout the commands read (datasets/cityscapes, ade20k, coco, my_dataset), torch's
hub cache holding the ImageNet ResNet-18 file (random weights under torchvision's name) and a
server on 127.0.0.1 standing in for the reference's release folder (random weights in its
format), so that published weights by name download, convert and load as they do online.

``python ...`` and ``bisenet ...`` commands run in this process (``conftest.run_python``: the
script as ``__main__`` with its argv, folder and environment, its exit code and output), which
saves starting Python and importing torch for each; ``bash``, ``torchrun`` and anything else run
as processes, since several processes are their point.
"""
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys

import cv2
import pytest
import torch

from bisenet.data.synthetic import make_synthetic_cityscapes
from bisenet.models.bisenetv1 import BiSeNetV1
from bisenet.models.bisenetv2 import BiSeNetV2
from bisenet.weights import PUBLISHED

from conftest import REPO, run_python
from layouts import make_ade20k, make_cocostuff
from test_weights import Server

# The pages whose commands run here, in this order: the README, then the docs/ pages it links.
PAGES = ("README.md", "docs/training.md", "docs/evaluation.md", "docs/datasets.md", "docs/pictures.md",
         "docs/deployment.md", "docs/speed.md")
COMMAND = re.compile(r"```(\w*)\n(.*?)```|`((?:python3?|torchrun|bash|pip|bisenet) [^`]+)`", re.S)


def page_text(page):
    with open(os.path.join(REPO, page), encoding="utf-8") as f:
        return f.read()


def page_commands(page):
    """A page's shell commands in order: every line of its ``bash`` blocks (comments dropped) and
    every inline ``python ...``, ``torchrun ...``, ``bash ...``, ``pip ...`` or ``bisenet ...``."""
    commands = []
    for match in COMMAND.finditer(page_text(page)):
        if match.group(3):
            commands.append(match.group(3).strip())
        elif match.group(1) == "bash":
            for line in match.group(2).splitlines():
                line = re.split(r"\s+#", line)[0].strip()
                if line and not line.startswith("#"):
                    commands.append(line)
    return commands


def documented_commands():
    """``(page, command)`` of every page's commands, the pages in ``PAGES``' order."""
    return [(page, command) for page in PAGES for command in page_commands(page)]


def python_blocks(page):
    return [m.group(2) for m in COMMAND.finditer(page_text(page)) if m.group(1) == "python"]


class Skip:
    def __init__(self, reason):
        self.reason = reason


# What keeps a run tiny: a few iterations of small crops, and evaluation crops and scales that fit
# the 64x128 images (a training run ends by evaluating: the Cityscapes recipes' four modes would
# otherwise pad every image into 1024x1024 windows at six scales). Overrides come last, so they win
# over a command's own.
EVAL = "eval.num_workers=0 eval.crop_size=[64,64] eval.scales=[0.75,1.0]"
TRAIN = f"train.max_iters=2 train.warmup_iters=1 train.batch_size=4 data.crop_size=[64,64] data.num_workers=0 " \
        f"train.amp=false {EVAL}"
ADE = "eval.short_side=64 eval.crop_size=[64,64] eval.scales=[0.75,1.0] eval.num_workers=0"
W = "output/bisenetv1_city/model_final.pth"  # the README's W.pth: a model trained above


def ran(command, *extra):
    return " ".join([command, *extra])


AS_IS = "as written"
INSTALLS = Skip("an install: CI's own `pip install -e .[dev]`, and test_install's non-editable wheel")

# A command of the pages -> the command this test runs (the same, with the overrides that keep it tiny and
# the placeholders W.pth and ... filled in), or why it is not run here.
RUN = {
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && bash tools/quickstart.sh":
        ran("bash tools/quickstart.sh", TRAIN, "train.batch_size=2"),
    "python tools/train.py --config configs/bisenetv1_synthetic.py train.max_iters=400 --force-resume":
        ran("python tools/train.py --config configs/bisenetv1_synthetic.py train.max_iters=400 --force-resume", TRAIN,
            "train.batch_size=2 train.max_iters=3"),
    "pip install -e .": INSTALLS,
    "pip install .": INSTALLS,
    "bisenet TOOL": "bisenet",  # lists the tools
    "python tools/TOOL.py": Skip("a pattern: each tool runs through its own commands here"),
    "python -m bisenet TOOL": "python -m bisenet download_weights",
    "torchrun --nproc_per_node=N -m bisenet train ...":
        ran("torchrun --nproc_per_node=2 -m bisenet train --config configs/bisenetv1_synthetic.py", TRAIN,
            "data.root=datasets/cityscapes train.output_dir=output/module_launch"),
    "bisenet evaluate --weights coincheung/bisenetv1_city":
        ran("bisenet evaluate --weights coincheung/bisenetv1_city", EVAL),
    "bisenet train --config bisenetv1_city.py data.root=/data/cityscapes":
        ran("bisenet train --config bisenetv1_city.py data.root=/data/cityscapes", TRAIN,
            "data.root=datasets/cityscapes train.output_dir=output/installed"),
    'pip install -e ".[deploy]"': INSTALLS,
    'pip install -e ".[plot]"': INSTALLS,
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" && python -m pytest -q':
        Skip("the test suite itself"),
    'python -m pytest -q -m "not slow"': Skip("the test suite itself"),
    "python tools/train.py --config configs/bisenetv1_city.py": ran("python tools/train.py --config "
                                                                    "configs/bisenetv1_city.py", TRAIN),
    "python tools/evaluate.py --config configs/bisenetv1_city.py --weights output/bisenetv1_city/model_final.pth":
        ran("python tools/evaluate.py --config configs/bisenetv1_city.py --weights "
            "output/bisenetv1_city/model_final.pth", EVAL),
    "python tools/demo.py img.png --config configs/bisenetv1_city.py --weights output/bisenetv1_city/model_final.pth":
        "python tools/demo.py img.png --config configs/bisenetv1_city.py --weights "
        "output/bisenetv1_city/model_final.pth",
    "python -c \"import torchvision; torchvision.models.resnet18(weights='IMAGENET1K_V1')\"": AS_IS,
    "python tools/download_weights.py coincheung/backbone_v2": AS_IS,
    "torchrun --nproc_per_node=2 tools/train.py --config configs/bisenetv1_city.py":
        ran("torchrun --nproc_per_node=2 tools/train.py --config configs/bisenetv1_city.py", TRAIN),
    "torchrun --nproc_per_node=2 tools/train.py --config configs/bisenetv1_city.py --resume":
        ran("torchrun --nproc_per_node=2 tools/train.py --config configs/bisenetv1_city.py --resume", TRAIN),
    "python tools/plot_log.py output/bisenetv1_city": AS_IS,
    "python tools/evaluate.py --config configs/bisenetv1_city.py --weights W.pth":
        ran(f"python tools/evaluate.py --config configs/bisenetv1_city.py --weights {W}", EVAL),
    "python tools/evaluate.py --config configs/bisenetv1_city.py --weights W.pth --crop":
        ran(f"python tools/evaluate.py --config configs/bisenetv1_city.py --weights {W} --crop", EVAL),
    "python tools/evaluate.py --config configs/bisenetv1_city.py --weights W.pth --msc --flip":
        ran(f"python tools/evaluate.py --config configs/bisenetv1_city.py --weights {W} --msc --flip", EVAL),
    "python tools/evaluate.py --config configs/bisenetv1_city.py --weights W.pth --msc --crop --flip":
        ran(f"python tools/evaluate.py --config configs/bisenetv1_city.py --weights {W} --msc --crop --flip", EVAL),
    "python tools/evaluate.py --config configs/bisenetv1_city.py --weights W.pth --modes all":
        ran(f"python tools/evaluate.py --config configs/bisenetv1_city.py --weights {W} --modes all", EVAL),
    "torchrun --nproc_per_node=2 tools/evaluate.py --config configs/bisenetv1_city.py --weights W.pth --msc --flip":
        ran(f"torchrun --nproc_per_node=2 tools/evaluate.py --config configs/bisenetv1_city.py --weights {W} --msc "
            "--flip", EVAL),
    "python tools/check_dataset.py --config configs/my_dataset.py": AS_IS,
    "python tools/prepare_cityscapes.py --root datasets/cityscapes": AS_IS,
    "python tools/browse_dataset.py --config configs/bisenetv1_city.py":
        ran("python tools/browse_dataset.py --config configs/bisenetv1_city.py", TRAIN),
    "python tools/browse_dataset.py --config configs/bisenetv1_city.py --split val --num 8 --out browse/":
        ran("python tools/browse_dataset.py --config configs/bisenetv1_city.py --split val --num 8 --out browse/",
            TRAIN),
    "python tools/check_dataset.py --config configs/my_dataset.py --plots stats/": AS_IS,
    "python tools/evaluate.py --config configs/bisenetv1_city.py --weights W.pth --modes ss,msf --json eval.json "
    "--plots plots/": ran(f"python tools/evaluate.py --config configs/bisenetv1_city.py --weights {W} --modes ss,msf "
                          "--json eval.json --plots plots/", EVAL),
    "python tools/plot_results.py eval.json --out plots/": AS_IS,
    "python tools/plot_results.py eval.json:msf paper.json --out plots/": AS_IS,
    "python tools/train.py --config configs/bisenetv1_city.py train.max_iters=1000 train.warmup_iters=100 "
    "data.root=/data/cityscapes":
        ran("python tools/train.py --config configs/bisenetv1_city.py train.max_iters=1000 train.warmup_iters=100 "
            "data.root=/data/cityscapes", TRAIN, "data.root=datasets/cityscapes train.output_dir=output/overrides"),
    "python tools/evaluate.py --weights coincheung/bisenetv1_city --modes all":
        ran("python tools/evaluate.py --weights coincheung/bisenetv1_city --modes all", EVAL),
    "python tools/evaluate.py --weights coincheung/bisenetv2_city --modes all":
        ran("python tools/evaluate.py --weights coincheung/bisenetv2_city --modes all", EVAL),
    "python tools/demo.py img.png --weights coincheung/bisenetv1_city": AS_IS,
    "python tools/download_weights.py": AS_IS,
    "python tools/convert_checkpoint.py --from coincheung model_final_v2_city.pth bisenetv2_city.pth": AS_IS,
    "torchrun --nproc_per_node=2 tools/train.py --config configs/bisenetv2_city.py":
        ran("torchrun --nproc_per_node=2 tools/train.py --config configs/bisenetv2_city.py", TRAIN,
            "train.sync_bn=false"),  # SyncBatchNorm needs CUDA
    "python tools/evaluate.py --weights coincheung/bisenetv1_ade20k --modes all":
        ran("python tools/evaluate.py --weights coincheung/bisenetv1_ade20k --modes all", ADE),
    "python tools/demo.py img.jpg --weights coincheung/bisenetv1_coco": AS_IS,
    "torchrun --nproc_per_node=4 tools/train.py --config configs/bisenetv1_coco.py":
        ran("torchrun --nproc_per_node=4 tools/train.py --config configs/bisenetv1_coco.py", TRAIN,
            "train.batch_size=8 train.sync_bn=false eval.batch_size=1"),
    "python tools/demo.py img.png --fast": AS_IS,
    "python tools/evaluate.py --config ... --weights W.pth --fast":
        ran(f"python tools/evaluate.py --config configs/bisenetv1_city.py --weights {W} --fast", EVAL),
    "python tools/evaluate.py --config ... --weights W.pth --precision int8 [--calib-images 32]":
        ran(f"python tools/evaluate.py --config configs/bisenetv1_city.py --weights {W} --precision int8 "
            "--calib-images 4", EVAL),
    "python tools/export_onnx.py --config configs/bisenetv1_city.py --weights W.pth --out bisenet.onnx [--dynamic] "
    "[--argmax]": f"python tools/export_onnx.py --config configs/bisenetv1_city.py --weights {W} --out bisenet.onnx "
                  "--dynamic --argmax --size 64 128",
    "python tools/export_onnx.py --config configs/bisenetv1_city.py --weights W.pth --out bisenet_int8.onnx --int8":
        f"python tools/export_onnx.py --config configs/bisenetv1_city.py --weights {W} --out bisenet_int8.onnx --int8 "
        "--calib-images 4 --tolerance 0.1",  # 2 iterations of training leave near-ties that int8 flips
    "python tools/export_torchscript.py --config configs/bisenetv1_city.py --weights W.pth --out bisenet.pt":
        f"python tools/export_torchscript.py --config configs/bisenetv1_city.py --weights {W} --out bisenet.pt "
        "--size 64 128",
    # the quickstart's model on the small val split: six variants, bf16 emulated, on 10 images of
    # 256x512 would take minutes
    "python benchmarks/fast_accuracy.py --config configs/bisenetv1_synthetic.py":
        "python benchmarks/fast_accuracy.py --config configs/bisenetv1_synthetic.py --calib-images 2 "
        "data.root=datasets/cityscapes",
    "python benchmarks/fast_accuracy.py --config configs/bisenetv1_synthetic.py --weights W.pth":
        "python benchmarks/fast_accuracy.py --config configs/bisenetv1_synthetic.py --weights "
        "output/bisenetv1_synthetic/model_final.pth --calib-images 2 data.root=datasets/cityscapes",
    "python tools/benchmark.py --config configs/bisenetv1_city.py --threads 2 --mode eager fast onnx":
        "python tools/benchmark.py --config configs/bisenetv1_city.py --threads 2 --mode eager fast onnx "
        "--size 64 128 --runs 1 --warmup 0",
    "python benchmarks/evaluation_overhead.py": "python benchmarks/evaluation_overhead.py --images 1 --size 64 128",
    "python benchmarks/metric_speed.py":
        "python benchmarks/metric_speed.py --images 4 --official-images 1 --distinct 2",
    "python benchmarks/train_step.py": "python benchmarks/train_step.py --crop 64 64 --steps 1",
    "python benchmarks/data_loader.py": "python benchmarks/data_loader.py --images 1 --repeat 1",
}


def test_every_docs_page_is_run_here():
    pages = {os.path.relpath(path, REPO) for path in glob.glob(os.path.join(REPO, "docs", "*.md"))}
    assert pages == set(PAGES[1:]), "a docs/ page is missing from PAGES: add it where its commands run in order"


def test_every_documented_command_is_known_here():
    unknown = [f"{page}: {command}" for page, command in documented_commands() if command not in RUN]
    assert not unknown, ("commands that tests/test_readme.py does not run; add how to run each to RUN:\n"
                         + "\n".join(unknown))


def test_every_command_run_here_is_still_documented():
    stale = set(RUN) - {command for _, command in documented_commands()}
    assert not stale, "RUN holds commands no page shows any more; remove them:\n" + "\n".join(sorted(stale))


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def anchors(text):
    """GitHub's anchors of a page's headings."""
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.*)$", text, re.M)}


def test_every_link_between_the_pages_leads_somewhere():
    """Each relative link and picture of the README and the docs/ pages names a file of the
    repository, and each ``#anchor`` a heading of its page."""
    broken = []
    for page in PAGES:
        for target in LINK.findall(page_text(page)):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            path = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            if not os.path.exists(os.path.join(REPO, path)):
                broken.append(f"{page}: {target} (no {path})")
            elif anchor and anchor not in anchors(page_text(path)):
                broken.append(f"{page}: {target} (no heading #{anchor} in {path})")
    assert not broken, "\n".join(broken)


def release_weights(folder):
    """The reference's release folder, with random weights of each published model in its format
    (our names are the reference's) and its ImageNet-pretrained V2 branches."""
    folder.mkdir()
    models = {"coincheung/bisenetv1_city": BiSeNetV1(19), "coincheung/bisenetv2_city": BiSeNetV2(19),
              "coincheung/bisenetv1_ade20k": BiSeNetV1(150), "coincheung/bisenetv1_coco": BiSeNetV1(171)}
    for name, model in models.items():
        torch.save(model.state_dict(), folder / PUBLISHED[name].filename)
    v2 = models["coincheung/bisenetv2_city"].state_dict()
    torch.save({branch: {k.split(".", 1)[1]: v for k, v in v2.items() if k.startswith(branch + ".")}
                for branch in ("detail", "segment")}, folder / "backbone_v2.pth")
    return v2


@pytest.fixture
def project(tmp_path):
    """A project folder as a user has it after the README's data and weights steps."""
    import torchvision

    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(os.path.join(REPO, "configs"), root / "configs")
    for folder in ("tools", "benchmarks"):
        (root / folder).symlink_to(os.path.join(REPO, folder))
    make_synthetic_cityscapes(str(root / "datasets" / "cityscapes"), num_train=8, num_val=2, height=64, width=128,
                              progress=False)
    make_ade20k(str(root / "datasets" / "ade20k"), num_train=2, num_val=2)
    make_cocostuff(str(root / "datasets" / "coco"), num_train=8, num_val=2)
    val = root / "datasets" / "cityscapes" / "leftImg8bit" / "val" / "frankfurt"
    image = sorted(val.iterdir())[0]
    shutil.copy(image, root / "img.png")
    cv2.imwrite(str(root / "img.jpg"), cv2.imread(str(image)))
    # configs/my_dataset.py: the README's copy of the template, for a small dataset in its layout
    template = (root / "configs" / "custom_dataset.py").read_text()
    (root / "configs" / "my_dataset.py").write_text(template)
    custom = root / "datasets" / "my_dataset"
    for split, count in (("train", 4), ("val", 2)):
        for k in range(count):
            for kind, suffix in (("images", ".jpg"), ("masks", ".png")):
                (custom / kind / split).mkdir(parents=True, exist_ok=True)
            rgb = cv2.imread(str(sorted((root / "datasets" / "cityscapes" / "leftImg8bit" / "train").rglob(
                "*.png"))[k]))
            cv2.imwrite(str(custom / "images" / split / f"{k}.jpg"), rgb)
            cv2.imwrite(str(custom / "masks" / split / f"{k}.png"), (rgb[:, :, 0] // 64 * 10).astype("uint8"))
    (root / "paper.json").write_text('{"name": "BiSeNetV1 paper", "miou": 74.8, "iou": {"road": 98.1, '
                                     '"sidewalk": 84.2}}')
    # The ImageNet ResNet-18 where torchvision keeps it (the README's first download), random here.
    checkpoints = root / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), checkpoints / "resnet18-f37072fd.pth")
    v2 = release_weights(tmp_path / "release")
    torch.save(v2, root / "model_final_v2_city.pth")  # a file a user downloaded by hand
    torch.save({"model": BiSeNetV1(19).state_dict()}, root / "bisenetv1_city.pth")  # the Python API's
    server = Server(tmp_path / "release")
    env = dict(os.environ, TORCH_HOME=str(root / "torch"), BISENET_WEIGHTS_MIRROR=server.url,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    yield root, env
    server.close()


def run_command(command, root, env):
    """Run a shell command line in the project folder: ``python``/``python3`` and ``bisenet``
    (the console script is ``python -m bisenet``) in this process, when the line is one command
    (no shell operators), anything else through bash."""
    argv = shlex.split(command)
    simple = not any(token in ("&&", "||", "|", ";", ">", "<") for token in argv)
    if simple and argv[0] in ("python", "python3"):
        return run_python(argv[1:], cwd=root, env=env)
    if simple and argv[0] == "bisenet":
        return run_python(["-m", "bisenet", *argv[1:]], cwd=root, env=env)
    return subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True, timeout=600,
                          check=False)


@pytest.mark.slow  # about 60 commands, a few seconds each
def test_every_documented_command_runs_in_order(project):
    root, env = project
    done = set()
    for page, command in documented_commands():
        how = RUN.get(command)
        if how is None:
            pytest.fail(f"{page}: command not known here: {command}")
        if isinstance(how, Skip):
            continue
        how = command if how == AS_IS else how
        if how in done:  # shown on two pages: once is enough
            continue
        done.add(how)
        result = run_command(how, root, env)
        output = f"{page}: {command}\nran: {how}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        assert result.returncode == 0, output
        assert "Traceback" not in result.stderr, output
    # The pages' Python: a config example is a config file, the API example runs as written on
    # an image batch.
    blocks = {page: python_blocks(page) for page in PAGES}
    assert {page: len(found) for page, found in blocks.items() if found} == {"README.md": 1, "docs/training.md": 1}, \
        "a Python block was added to a page: run it here"
    (api,), (config,) = blocks["README.md"], blocks["docs/training.md"]
    (root / "configs" / "my_v2.py").write_text(config)
    script = ("import torch\nfrom bisenet.config import load_config\n"
              "assert load_config('configs/my_v2.py').model.name == 'bisenetv2'\n"
              "images = torch.randn(1, 3, 64, 128)\n" + api
              + "\nassert logits.shape == (1, 19, 64, 128) and labels.shape == (1, 64, 128)\n")
    result = run_python(["-c", script], cwd=root, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
