# make bench: full-size random checkpoint -> converted fp32 and bf16 model files -> bench/bench_model.py,
# which runs the reference pipeline and libjaclip (bench/jaclip_bench.c, the C API) in one run.
# BENCH_ARGS=--write-docs updates docs/benchmarks.md. Not part of make test: speed is measured here only.
BENCH_DIR := $(BUILD)/bench
FULL_CKPT := $(BENCH_DIR)/full-checkpoint
FULL_MODEL := $(BENCH_DIR)/full.jaclip
FULL_MODEL_BF16 := $(BENCH_DIR)/full-bf16.jaclip
FULL_MODEL_INT8 := $(BENCH_DIR)/full-int8.jaclip
BENCH_REPEAT ?= 3
BENCH_ARGS ?=

$(FULL_CKPT)/config.json: tools/jaclip-make-test-model
	$(PYTHON) tools/jaclip-make-test-model --size full $(FULL_CKPT)

$(FULL_MODEL): $(FULL_CKPT)/config.json $(CONVERT_DEPS)
	$(PYTHON) tools/jaclip-convert $(FULL_CKPT) $@ --tokenizer $(TOKENIZER_MODEL)

$(FULL_MODEL_BF16): $(FULL_CKPT)/config.json $(CONVERT_DEPS)
	$(PYTHON) tools/jaclip-convert $(FULL_CKPT) $@ --tokenizer $(TOKENIZER_MODEL) --dtype bf16

$(FULL_MODEL_INT8): $(FULL_CKPT)/config.json $(CONVERT_DEPS)
	$(PYTHON) tools/jaclip-convert $(FULL_CKPT) $@ --tokenizer $(TOKENIZER_MODEL) --dtype int8

$(BENCH_DIR)/jaclip_bench: bench/jaclip_bench.c include/jaclip.h $(SHLIB)
	@mkdir -p $(BENCH_DIR)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Iinclude -o $@ $< -L$(BUILD) -ljaclip \
		-Wl,-rpath,$(abspath $(BUILD))

.PHONY: bench bench-model bench-novel-inputs bench-image-formats
bench: check-setup
	$(MAKE) --no-print-directory lib bench-model bench-novel-inputs bench-image-formats

# Decode speed per image format (WebP, GIF, BMP, TIFF, HEIF) against PIL 9.4 in one run.
bench-image-formats: lib
	$(TEST_ENV) $(PYTHON) bench/bench_image_formats.py

# Repeated against novel inputs per precision (int8's oneDNN primitives are keyed on more than shape).
bench-novel-inputs: lib $(FULL_MODEL) $(FULL_MODEL_BF16) $(FULL_MODEL_INT8)
	$(TEST_ENV) $(PYTHON) bench/bench_novel_inputs.py --model $(FULL_MODEL) --model $(FULL_MODEL_BF16) \
		--model $(FULL_MODEL_INT8)

bench-model: $(FULL_MODEL) $(FULL_MODEL_BF16) $(FULL_MODEL_INT8) $(BENCH_DIR)/jaclip_bench
	$(PYTHON) bench/bench_model.py --checkpoint $(FULL_CKPT) --model $(FULL_MODEL) \
		--model-bf16 $(FULL_MODEL_BF16) --model-int8 $(FULL_MODEL_INT8) --bench-bin $(BENCH_DIR)/jaclip_bench \
		--library-dir $(abspath $(BUILD)) --shared-data $(SHARED_DATA) --repeat $(BENCH_REPEAT) $(BENCH_ARGS)
