from setuptools import find_packages, setup

DEPLOY = ["onnx", "onnxruntime"]  # ONNX export and the fast CPU path
PLOT = ["matplotlib"]  # tools/plot_log.py, browse_dataset.py, plot_results.py, the --plots options

setup(
    name="bisenet",
    version="0.1.0",
    description="BiSeNet semantic segmentation on Cityscapes: training, evaluation, inference",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    # configs/ and tools/ stay at the top of the checkout, where the README and users expect them;
    # a wheel has no checkout beside it, so they are shipped inside the package as bisenet/configs
    # and bisenet/tools (found by bisenet.resources), and the `bisenet` command runs the tools.
    packages=find_packages(include=["bisenet", "bisenet.*"]) + ["bisenet.configs", "bisenet.tools"],
    package_dir={"bisenet.configs": "configs", "bisenet.tools": "tools"},
    entry_points={"console_scripts": ["bisenet = bisenet.cli:command"]},
    install_requires=[
        "torch>=2.3",  # torch.amp.GradScaler("cpu"), fp16 autocast on the CPU
        "torchvision>=0.18",
        "opencv-python-headless>=4.5",
        "numpy",
        "pillow",
        "tqdm",
        "tabulate",
    ],
    extras_require={
        "deploy": DEPLOY,
        "plot": PLOT,
        # setuptools: tests/test_install.py builds the wheel without build isolation (70.1 builds
        # wheels without the `wheel` package).
        "dev": ["pytest>=7", "cityscapesscripts>=2.2", "setuptools>=70.1", *DEPLOY, *PLOT],
    },
)
