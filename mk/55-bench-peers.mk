# make bench-peers: ONNX Runtime (onnxruntime-node from the npm registry, installed here into build/ort,
# never a runtime or test dependency) against libjaclip fp32/bf16/int8 on the same CPU, in one run with
# interleaved rounds (bench/peers/bench_peers.py). ONNX graphs are exported at opset 17 from the
# reference model of the full-size random checkpoint (bench/peers/export_onnx.py, python3-onnx).
# PEERS_ARGS="--write-docs --label after" writes docs/benchmarks.md. Not part of make test.
ORT_DIR := $(BUILD)/ort
ONNX_DIR := $(BENCH_DIR)/onnx
PEERS_ROUNDS ?= 5
PEERS_ARGS ?=

# --ignore-scripts: the package's postinstall fetches optional GPU providers from a host out of reach;
# the CPU binding for linux x64 ships inside the package. npm itself (Debian's, some 300 node packages)
# is installed here, not by tools/setup-deps: only this benchmark needs it.
$(ORT_DIR)/node_modules/onnxruntime-node/package.json:
	@mkdir -p $(ORT_DIR)
	@command -v npm >/dev/null || { echo "bench-peers: installing Debian's npm (bench only)"; \
	  apt-get install -y -q --no-install-recommends npm; }
	npm install --ignore-scripts --no-audit --no-fund --prefix $(ORT_DIR) onnxruntime-node
	@test -f $(ORT_DIR)/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node || \
	  { echo "onnxruntime-node ships no linux x64 binding"; exit 1; }

$(ONNX_DIR)/text-int8.onnx: $(FULL_CKPT)/config.json bench/peers/export_onnx.py bench/peers/quantize_int8.py
	$(PYTHON) bench/peers/export_onnx.py $(FULL_CKPT) $(ONNX_DIR)

.PHONY: bench-peers
bench-peers: lib $(ORT_DIR)/node_modules/onnxruntime-node/package.json $(ONNX_DIR)/text-int8.onnx \
		$(FULL_MODEL) $(FULL_MODEL_BF16) $(FULL_MODEL_INT8)
	JACLIP_LIBRARY=$(abspath $(BUILD)/libjaclip.so) $(PYTHON) bench/peers/bench_peers.py --onnx-dir $(ONNX_DIR) \
		--ort-modules $(ORT_DIR) --model $(FULL_MODEL) --model-bf16 $(FULL_MODEL_BF16) \
		--model-int8 $(FULL_MODEL_INT8) --shared-data $(SHARED_DATA) --rounds $(PEERS_ROUNDS) $(PEERS_ARGS)

# The thread-layout and oneDNN levers alone, on the fp32 model libjaclip runs (bench/peers/levers.py).
.PHONY: bench-levers
bench-levers: $(FULL_MODEL)
	$(PYTHON) bench/peers/levers.py $(FULL_MODEL) $(PEERS_ROUNDS)
