"""Koala manga colorizer: `pip install -e .[test]` for development; Dataflow ships it with
--setup_file=./setup.py. The pins are versions tested together."""
import setuptools

REQUIRED = [
    "apache-beam[gcp]==2.77.0",
    "tensorflow==2.21.0",
    "keras>=3.10,<4",
    "tensorflow-hub==0.16.1",
    "protobuf>=6,<7",
    "numpy>=2.0,<3",
    "opencv-python-headless>=4.10",
    "pillow>=11",
    "scikit-image>=0.25",      # bundled sample photos; reference colour math in tests
    "scipy>=1.13",             # trainer.levin: Levin et al. 2004's sparse solve (evaluation)
    "google-cloud-storage>=2.18",
    "google-crc32c>=1.6",      # WriteToTFRecord's CRC
    "matplotlib>=3.9",         # training curves
    "tqdm>=4.66",              # progress bars (client, batch tools)
    "requests>=2.32",          # the REST client
    "aiohttp>=3.11,<4",        # serving.server: event-driven HTTP, slow clients hold no thread
    "tensorboard>=2.21",       # training logs (TensorFlow 2.21 does not pull it in)
    "streamlit>=1.67",         # serving/streamlit_app.py
    "streamlit-image-coordinates>=0.4.1,<0.5",   # the Streamlit page: click to place hint dots
]
EXTRAS = {
    "test": ["pytest>=8", "pytest-timeout>=2.3",
             "gcp-storage-emulator>=2024.8",    # a local Cloud Storage for the gs:// tests
             "selenium>=4.51"],                 # drives Debian's Chromium in the browser test
    "vertex": ["google-cloud-aiplatform>=1.70"],   # trainer.submit (not needed for --dry_run)
}

setuptools.setup(
    name="koala-colorizer",
    version="0.1.0",
    description="Deep Koalarization for manga: Beam preprocessing, a Keras trainer, TF Serving.",
    python_requires=">=3.11,<3.13",
    packages=setuptools.find_packages(include=["koala", "koala.*", "pipeline", "pipeline.*",
                                               "trainer", "trainer.*", "serving", "serving.*",
                                               "demo", "demo.*"]),
    install_requires=REQUIRED,
    extras_require=EXTRAS,
)
