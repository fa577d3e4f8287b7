from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
ONNX = ["onnx>=1.18", "onnxruntime>=1.22", "onnxscript>=0.5"]
INDEX = ["datasets>=3.0", "faiss-cpu>=1.8"]
# hf-xclip app (tested: gradio 6.31.0, gradio_client 2.7.2); the browser test drives Chromium with selenium.
APP = ["gradio>=6.0,<7", "gradio_client>=2.0"]
RAY = ["ray[data]>=2.40"]

setup(
    name="hf_xclip",
    version="0.1.0",
    description="X-CLIP video-text models for the Hugging Face ecosystem: faithful port, pipeline, conversion, PEFT.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["hf_xclip", "hf_xclip.*"]),
    include_package_data=True,
    package_data={"hf_xclip": ["default_model/*", "default_model/**/*"]},
    install_requires=[
        # torch is pinned by the install command in the README (CPU build); any recent torch works.
        "torch>=2.4",
        "transformers>=5.0,<6",
        "safetensors>=0.4",
        "huggingface_hub>=1.0",
        "accelerate>=1.0",
        "decord>=0.6; platform_machine == 'x86_64'",
        "av>=12",
        "peft>=0.17",
        "sentencepiece>=0.2",
        "numpy",
        "tqdm",
        "ftfy>=6",
    ],
    extras_require={
        "plot": ["matplotlib>=3.7"],
        # hf-xclip export / XClipOrtModel: torch's dynamo exporter needs onnxscript (tested: onnx 1.23.2,
        # onnxruntime 1.32.0, onnxscript 0.7.2 with torch 2.13 on Python 3.11)
        "onnx": ONNX,
        # 8-bit language models for the LLM label prompter (CUDA GPUs only).
        "llm-8bit": ["bitsandbytes>=0.43"],
        # video index and search: Arrow shards (datasets / pyarrow), FAISS candidates (tested: datasets 5.2.0,
        # pyarrow 26.0.1, faiss-cpu 1.15.1 on Python 3.11)
        "index": INDEX,
        # hf-xclip app: the web page (Gradio)
        "app": APP,
        # transformers' video processors (VideoPrism) and fast image processors; install the torchvision build that
        # matches your torch. Without it the PIL processors are used (docs/models.md).
        "video-processors": ["torchvision"],
        # torchcodec decoding (`decode_backend="torchcodec"`; "auto" tries it after PyAV, see docs/videos.md): also
        # needs FFmpeg's shared libraries (apt-get install ffmpeg) and a build matching the installed torch (the PyPI
        # wheels link the CUDA build of torch; tested: torchcodec 0.17.0 with torch 2.13.0 (CUDA 13 build, run on
        # CPU), FFmpeg 5.1).
        "torchcodec": ["torchcodec>=0.8"],
        # --engine ray, hf_xclip.distributed on Ray Data (tested: ray 2.60.0 on Python 3.11); index jobs need "index"
        "ray": [*RAY, *INDEX],
        # scikit-learn: the reference the average-precision tests compare with; parameterized: transformers' test
        # harness (tests/test_transformers_harness.py) imports it
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "matplotlib>=3.7",
            "scikit-learn>=1.3",
            "parameterized>=0.9",
            "selenium>=4.10",
            *ONNX,
            *INDEX,
            *APP,
            *RAY,
        ],
    },
    entry_points={"console_scripts": ["hf-xclip=hf_xclip.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
