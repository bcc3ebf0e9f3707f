from setuptools import find_packages, setup

setup(
    name="bisenet",
    version="0.1.0",
    description="BiSeNet semantic segmentation on Cityscapes: training, evaluation, inference",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["bisenet", "bisenet.*"]),
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "opencv-python-headless>=4.5",
        "numpy",
        "tqdm",
        "tabulate",
        "pillow",
        "matplotlib",  # tools/plot_log.py
        "onnx",  # tools/export_onnx.py
        "onnxruntime",  # the fast CPU inference path, and checking exports
    ],
    extras_require={
        "dev": ["pytest>=7", "cityscapesscripts>=2.2"],
    },
)
