# ANN files (lib/ann/): a bounded libFuzzer run in make test (test-fuzz-ann, ANN_FUZZ_SECONDS, default
# 20) and a long one in make fuzz (fuzz-ann) over damaged files. The harness builds its own index and
# writes one valid file per kind as seeds (test/fuzz/fuzz_ann.c). The plugin itself is not instrumented;
# the check of faiss's stream before faiss reads it (lib/ann/ann_faiss_check.c) is. Forged inputs: half
# the inputs get valid checksums and header fields, so mutated faiss data reaches that check (and what
# it passes, faiss): the bounded run does this since the check exists, fuzz-ann-forged (not in make
# fuzz) for FUZZ_SECONDS. test/fuzz/ann-regressions: forged inputs that made faiss allocate 3.5 GB, leak
# what it had read, crash the first search, and divide by zero in read_index (M = 0), before the
# plugin bounded its reads and the stream was checked; test-fuzz-ann replays them.
ANN_FUZZ_DIR := $(BUILD)/fuzz-ann
ANN_FUZZ := $(ANN_FUZZ_DIR)/fuzz_ann
ANN_FUZZ_SECONDS ?= 20
ANN_FUZZ_SRCS := $(COMMON_SRCS) $(INDEX_SRCS) $(ANN_SRCS) lib/backend/plugin.c lib/backend/faiss/faiss_plugin.c
# alloc_dealloc_mismatch=0: the plugin's own operator delete (faiss_bridge.cpp) frees with free() what
# libstdc++'s code inside the plugin's static initialisers got from the sanitizer's operator new; the
# memory is the same malloc heap, but ASan books the two kinds apart.
ANN_FUZZ_ENV := JACLIP_FAISS_PLUGIN=$(abspath $(FAISS_PLUGIN)) OMP_NUM_THREADS=1 \
	ASAN_OPTIONS=detect_leaks=1:alloc_dealloc_mismatch=0
ANN_FUZZ_ARGS := -timeout=20 -rss_limit_mb=3072 -max_len=4000000

$(ANN_FUZZ): test/fuzz/fuzz_ann.c $(call fuzz_objs,$(ANN_FUZZ_SRCS))
	$(call fuzz_link,$(PKG_LIBS) -ldl -lm -lpthread)

$(ANN_FUZZ_DIR)/seed/.done: $(ANN_FUZZ) $(FAISS_PLUGIN)
	rm -rf $(ANN_FUZZ_DIR)/seed && mkdir -p $(ANN_FUZZ_DIR)/seed
	$(ANN_FUZZ_ENV) JACLIP_FUZZ_ANN_SEEDS=$(ANN_FUZZ_DIR)/seed $(ANN_FUZZ)
	for f in $(ANN_FUZZ_DIR)/seed/*.ann; do { printf '\001'; cat $$f; } > $$f.crafted; { printf '\000'; cat $$f; } > $$f.raw; rm $$f; done
	touch $@

.PHONY: test-fuzz-ann fuzz-ann fuzz-ann-forged
test-fuzz-ann: $(ANN_FUZZ) $(ANN_FUZZ_DIR)/seed/.done
	$(ANN_FUZZ_ENV) JACLIP_FUZZ_ANN_FORGED=1 $(ANN_FUZZ) $(ANN_FUZZ_ARGS) test/fuzz/ann-regressions/* \
		> $(ANN_FUZZ_DIR)/regressions.log 2>&1 || { tail -n 40 $(ANN_FUZZ_DIR)/regressions.log; exit 1; }
	@echo "fuzzing ANN files for $(ANN_FUZZ_SECONDS) s (log: $(ANN_FUZZ_DIR)/fuzz.log)"
	$(call fuzz_bounded,fuzz_ann,$(ANN_FUZZ),$(ANN_FUZZ_DIR),-max_total_time=$(ANN_FUZZ_SECONDS) $(ANN_FUZZ_ARGS),$(ANN_FUZZ_ENV) JACLIP_FUZZ_ANN_FORGED=1)

fuzz-ann: $(ANN_FUZZ) $(ANN_FUZZ_DIR)/seed/.done
	$(call fuzz_long,$(ANN_FUZZ),$(ANN_FUZZ_DIR),$(ANN_FUZZ_ARGS),$(ANN_FUZZ_ENV))

fuzz-ann-forged: $(ANN_FUZZ) $(ANN_FUZZ_DIR)/seed/.done
	$(call fuzz_long,$(ANN_FUZZ),$(ANN_FUZZ_DIR),$(ANN_FUZZ_ARGS),$(ANN_FUZZ_ENV) JACLIP_FUZZ_ANN_FORGED=1)

fuzz: fuzz-ann
TEST_STEPS += test-fuzz-ann
