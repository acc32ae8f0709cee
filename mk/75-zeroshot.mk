# Zero-shot classification (issue 14): lib/zeroshot/classifier.c with the presets generated from
# data/zeroshot/imagenet_zeroshot_data.py, `jaclip eval`, the CLIP family. Its tests run in test-c
# (test/c/test_classifier.c) and test-python (test/python/test_zeroshot.py); test-zeroshot-presets
# checks the committed lib/zeroshot/zeroshot_presets.inc against the data file; bench-classifier times the
# 1000 x 37 ImageNet classifier on the full-size model (make bench only).

.PHONY: test-zeroshot-presets
test-zeroshot-presets:
	$(PYTHON) tools/jaclip-gen-presets data/zeroshot/imagenet_zeroshot_data.py - | cmp - lib/zeroshot/zeroshot_presets.inc

TEST_STEPS += test-zeroshot-presets

# make bench-classifier (also run by make bench): BENCH_CLASSIFIER_MODEL defaults to the full-size fp32
# model of make bench; the flags line of the CPU is printed beside the result.
BENCH_CLASSIFIER_MODEL ?= $(FULL_MODEL)
# REPEAT_LOAD REFERENCE_TEXTS: the reference encodes a 3 700-text sample (the whole 37 000 doubles the
# ~20 min the full-size model takes on 2 cores)
BENCH_CLASSIFIER_ARGS ?= 5 3700
$(BENCH_DIR)/bench_classifier: bench/bench_classifier.c include/jaclip.h $(SHLIB)
	@mkdir -p $(BENCH_DIR)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Iinclude -o $@ $< -L$(BUILD) -ljaclip \
		-Wl,-rpath,$(abspath $(BUILD))

.PHONY: bench-classifier
bench: bench-classifier
bench-classifier: $(BENCH_CLASSIFIER_MODEL) $(BENCH_DIR)/bench_classifier
	@grep -m1 -o -w -E 'avx512bf16|avx512f|avx2' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
	$(BENCH_DIR)/bench_classifier $(BENCH_CLASSIFIER_MODEL) $(BENCH_DIR)/imagenet.jzs $(BENCH_CLASSIFIER_ARGS)
