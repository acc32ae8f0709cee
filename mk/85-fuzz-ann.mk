# ANN files (lib/ann/): a bounded libFuzzer run in make test (test-fuzz-ann, ANN_FUZZ_SECONDS, default
# 20) and a long one in make fuzz (fuzz-ann). The harness builds its own index and writes one valid
# file per kind as seeds; half the inputs get valid checksums and header fields, so mutated faiss data
# reaches the plugin's deserializer (test/fuzz/fuzz_ann.c). The plugin itself is not instrumented.
# test/fuzz/ann-regressions: inputs the first runs found before the plugin bounded and checked faiss's
# reads (one made faiss allocate 3.5 GB, one leaked what faiss had read, one crashed the first search);
# they join the seeds.
ANN_FUZZ_DIR := $(BUILD)/fuzz-ann
ANN_FUZZ := $(ANN_FUZZ_DIR)/fuzz_ann
ANN_FUZZ_SECONDS ?= 20
ANN_FUZZ_SRCS := $(COMMON_SRCS) $(INDEX_SRCS) $(ANN_SRCS) lib/backend/plugin.c lib/backend/faiss/faiss_plugin.c
ANN_FUZZ_ENV := JACLIP_FAISS_PLUGIN=$(abspath $(FAISS_PLUGIN)) OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1
ANN_FUZZ_ARGS := -timeout=20 -rss_limit_mb=3072 -max_len=4000000

$(ANN_FUZZ): test/fuzz/fuzz_ann.c $(call fuzz_objs,$(ANN_FUZZ_SRCS))
	$(call fuzz_link,$(PKG_LIBS) -ldl -lm -lpthread)

$(ANN_FUZZ_DIR)/seed/.done: $(ANN_FUZZ) $(FAISS_PLUGIN)
	rm -rf $(ANN_FUZZ_DIR)/seed && mkdir -p $(ANN_FUZZ_DIR)/seed
	$(ANN_FUZZ_ENV) JACLIP_FUZZ_ANN_SEEDS=$(ANN_FUZZ_DIR)/seed $(ANN_FUZZ)
	for f in $(ANN_FUZZ_DIR)/seed/*.ann; do { printf '\001'; cat $$f; } > $$f.crafted; { printf '\000'; cat $$f; } > $$f.raw; rm $$f; done
	cp test/fuzz/ann-regressions/* $(ANN_FUZZ_DIR)/seed/
	touch $@

.PHONY: test-fuzz-ann fuzz-ann
test-fuzz-ann: $(ANN_FUZZ) $(ANN_FUZZ_DIR)/seed/.done
	@echo "fuzzing ANN files for $(ANN_FUZZ_SECONDS) s (log: $(ANN_FUZZ_DIR)/fuzz.log)"
	$(call fuzz_bounded,fuzz_ann,$(ANN_FUZZ),$(ANN_FUZZ_DIR),-max_total_time=$(ANN_FUZZ_SECONDS) $(ANN_FUZZ_ARGS),$(ANN_FUZZ_ENV))

fuzz-ann: $(ANN_FUZZ) $(ANN_FUZZ_DIR)/seed/.done
	$(call fuzz_long,$(ANN_FUZZ),$(ANN_FUZZ_DIR),$(ANN_FUZZ_ARGS),$(ANN_FUZZ_ENV))

fuzz: fuzz-ann
TEST_STEPS += test-fuzz-ann
