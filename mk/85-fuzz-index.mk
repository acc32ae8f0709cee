# Index files (lib/index/): a bounded libFuzzer run in make test (test-fuzz-index, INDEX_FUZZ_SECONDS,
# default 20) and a long one in make fuzz (fuzz-index). Seeds are written at run time by the Python
# binding: an empty index, a small one, one grown by an append, one with a tombstone and a fingerprint,
# a float16 one, one with metadata segments (version 3), and a version 1 file (test/fixtures).
INDEX_FUZZ_DIR := $(BUILD)/fuzz-index
INDEX_FUZZ := $(INDEX_FUZZ_DIR)/fuzz_index
INDEX_FUZZ_SECONDS ?= 20
INDEX_FUZZ_SRCS := $(COMMON_SRCS) $(INDEX_SRCS)
INDEX_FUZZ_ARGS := -timeout=10 -rss_limit_mb=2048 -max_len=65536

$(INDEX_FUZZ): test/fuzz/fuzz_index.c $(call fuzz_objs,$(INDEX_FUZZ_SRCS))
	$(call fuzz_link,$(PKG_LIBS) -lm -lpthread)

$(INDEX_FUZZ_DIR)/seed/.done: $(SHLIB)
	rm -rf $(INDEX_FUZZ_DIR)/seed && mkdir -p $(INDEX_FUZZ_DIR)/seed
	JACLIP_LIBRARY=$(abspath $(SHLIB)) PYTHONPATH=bindings/python $(PYTHON) -c 'import sys, jaclip; \
	  d = sys.argv[1]; \
	  jaclip.Index(4).save(d + "/empty.jci"); \
	  ix = jaclip.Index(4); ix.add([[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 0, 3]], ["a.jpg", "犬.png", "c"]); \
	  ix.save(d + "/three.jci"); ix.save(d + "/grown.jci"); \
	  jaclip.Index.append_file(d + "/grown.jci", [[1, 1, 1, 1]], ["appended"]); \
	  ix.fingerprint = "cloob-4-0123456789abcdef"; ix.save(d + "/tombstones.jci"); \
	  jaclip.Index.remove_file(d + "/tombstones.jci", ["犬.png"]); \
	  h = jaclip.Index(4, fp16=True); h.add([[1, 0, 0, 0], [0, 1, 1, 0]], ["h1", "h2"]); h.save(d + "/fp16.jci"); \
	  jaclip.Index.remove_file(d + "/fp16.jci", ["h1"]); \
	  ix.set_metadata("root", "/写真"); ix.set_metadata("labels", "relative"); ix.save(d + "/meta.jci"); \
	  jaclip.Index.set_metadata_file(d + "/meta.jci", "orientation", "exif-transpose")' $(INDEX_FUZZ_DIR)/seed
	cp test/fixtures/index-v1.jci $(INDEX_FUZZ_DIR)/seed/version1.jci
	touch $@

.PHONY: test-fuzz-index fuzz-index
test-fuzz-index: $(INDEX_FUZZ) $(INDEX_FUZZ_DIR)/seed/.done
	@echo "fuzzing index files for $(INDEX_FUZZ_SECONDS) s (log: $(INDEX_FUZZ_DIR)/fuzz.log)"
	$(call fuzz_bounded,fuzz_index,$(INDEX_FUZZ),$(INDEX_FUZZ_DIR),-max_total_time=$(INDEX_FUZZ_SECONDS) $(INDEX_FUZZ_ARGS))

fuzz-index: $(INDEX_FUZZ) $(INDEX_FUZZ_DIR)/seed/.done
	$(call fuzz_long,$(INDEX_FUZZ),$(INDEX_FUZZ_DIR),$(INDEX_FUZZ_ARGS))

TEST_STEPS += test-fuzz-index
