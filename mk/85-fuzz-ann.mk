# ANN files (lib/ann.c): a bounded libFuzzer run in make test (test-fuzz-ann, ANN_FUZZ_SECONDS, default
# 20) and a long one in make fuzz (fuzz-ann). The harness builds its own index and writes one valid
# file per kind as seeds; half the inputs get valid checksums and header fields, so mutated faiss data
# reaches the plugin's deserializer (test/fuzz/fuzz_ann.c). The plugin itself is not instrumented.
# test/fuzz/ann-regressions: inputs the first runs found before the plugin bounded and checked faiss's
# reads (one made faiss allocate 3.5 GB, one leaked what faiss had read, one crashed the first search);
# they join the seeds.
ANN_FUZZ_DIR := $(BUILD)/fuzz-ann
ANN_FUZZ := $(ANN_FUZZ_DIR)/fuzz_ann
ANN_FUZZ_SECONDS ?= 20
ANN_FUZZ_SRCS := lib/error.c lib/tensor.c lib/similarity.c lib/index.c lib/ann.c lib/faiss_plugin.c lib/file_input.c
ANN_FUZZ_ENV := JACLIP_FAISS_PLUGIN=$(abspath $(FAISS_PLUGIN)) OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1
ANN_FUZZ_ARGS := -timeout=20 -rss_limit_mb=3072 -max_len=4000000 -artifact_prefix=$(ANN_FUZZ_DIR)/

$(ANN_FUZZ): test/fuzz/fuzz_ann.c $(ANN_FUZZ_SRCS) include/jaclip.h lib/internal.h lib/faiss_bridge.h
	mkdir -p $(ANN_FUZZ_DIR)
	$(CLANG) -std=c11 -D_GNU_SOURCE -O1 -g $(INDEX_SAN) -fsanitize=fuzzer -Iinclude -Ilib -o $@ \
		test/fuzz/fuzz_ann.c $(ANN_FUZZ_SRCS) -lz -lm -ldl -lpthread

$(ANN_FUZZ_DIR)/seed/.done: $(ANN_FUZZ) $(FAISS_PLUGIN)
	rm -rf $(ANN_FUZZ_DIR)/seed && mkdir -p $(ANN_FUZZ_DIR)/seed
	$(ANN_FUZZ_ENV) JACLIP_FUZZ_ANN_SEEDS=$(ANN_FUZZ_DIR)/seed $(ANN_FUZZ)
	for f in $(ANN_FUZZ_DIR)/seed/*.ann; do { printf '\001'; cat $$f; } > $$f.crafted; { printf '\000'; cat $$f; } > $$f.raw; rm $$f; done
	cp test/fuzz/ann-regressions/* $(ANN_FUZZ_DIR)/seed/
	touch $@

.PHONY: test-fuzz-ann fuzz-ann
test-fuzz-ann: $(ANN_FUZZ) $(ANN_FUZZ_DIR)/seed/.done
	@echo "fuzzing ANN files for $(ANN_FUZZ_SECONDS) s (log: $(ANN_FUZZ_DIR)/fuzz.log)"
	@rm -rf $(ANN_FUZZ_DIR)/run-corpus && mkdir -p $(ANN_FUZZ_DIR)/run-corpus
	@if $(ANN_FUZZ_ENV) $(ANN_FUZZ) -max_total_time=$(ANN_FUZZ_SECONDS) $(ANN_FUZZ_ARGS) \
	    $(ANN_FUZZ_DIR)/run-corpus $(ANN_FUZZ_DIR)/seed > $(ANN_FUZZ_DIR)/fuzz.log 2>&1; then \
	  grep -E '^Done [0-9]+ runs' $(ANN_FUZZ_DIR)/fuzz.log; \
	else tail -n 60 $(ANN_FUZZ_DIR)/fuzz.log; echo "fuzz_ann failed; the input is in $(ANN_FUZZ_DIR)/"; exit 1; fi

fuzz-ann: $(ANN_FUZZ) $(ANN_FUZZ_DIR)/seed/.done
	mkdir -p $(ANN_FUZZ_DIR)/corpus
	$(ANN_FUZZ_ENV) $(ANN_FUZZ) -max_total_time=$(FUZZ_SECONDS) $(ANN_FUZZ_ARGS) $(ANN_FUZZ_DIR)/corpus $(ANN_FUZZ_DIR)/seed

fuzz: fuzz-ann
TEST_STEPS += test-fuzz-ann
