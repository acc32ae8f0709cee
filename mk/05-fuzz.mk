# libFuzzer harnesses (test/fuzz/): what they share. Each fragment that owns a harness (mk/20-tokenizer.mk,
# mk/30-image.mk, mk/80-reliability.mk, mk/85-fuzz-index.mk, mk/85-fuzz-ann.mk) adds a bounded run to make test
# (test-fuzz-NAME, seconds or runs of its own) and a long one (fuzz-NAME, FUZZ_SECONDS each, corpus kept);
# `make fuzz` runs every long one.
FUZZ_SECONDS ?= 3600
# The tokenizer, image and index harnesses run our sources under ASan + UBSan; their objects are compiled
# once, into FUZZ_OBJ_DIR, with coverage (fuzzer-no-link). The model harness has no sanitizer (libtorch
# cannot run under ASan) and its own objects (mk/80-reliability.mk).
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_OBJ_DIR := $(BUILD)/fuzz-obj
$(eval $(call san_rules,$(FUZZ_OBJ_DIR),$(FUZZ_SAN) -fsanitize=fuzzer-no-link))
fuzz_objs = $(call lib_objs,$(FUZZ_OBJ_DIR),$(1))

# Recipe of a sanitized harness: the first prerequisite (test/fuzz/*.c or *.cpp) linked with the
# objects among the prerequisites and the libraries $(1).
define fuzz_link
	@mkdir -p $(@D)
	$(if $(filter %.cpp,$<),$(CLANGXX) -std=c++17,$(CLANG) -std=c11) -D_GNU_SOURCE -O1 -g -ffp-contract=off \
		$(FUZZ_SAN) -fsanitize=fuzzer-no-link -Iinclude -Ilib -c $< -o $@.o
	$(CLANGXX) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $@.o $(filter %.o,$^) $(1)
endef

# $(call fuzz_bounded,NAME,BINARY,DIR,ARGS,ENV): the bounded run of make test. A fresh corpus in
# DIR/run-corpus grows from the seeds in DIR/seed; the log is DIR/fuzz.log, a crashing input lands in DIR/.
define fuzz_bounded
	@rm -rf $(3)/run-corpus && mkdir -p $(3)/run-corpus
	@if $(5) $(2) $(4) -artifact_prefix=$(3)/ $(3)/run-corpus $(3)/seed > $(3)/fuzz.log 2>&1; then \
	  grep -E '^Done [0-9]+ runs' $(3)/fuzz.log; \
	else tail -n 60 $(3)/fuzz.log; echo "$(1) failed; the input is in $(3)/"; exit 1; fi
endef

# $(call fuzz_long,BINARY,DIR,ARGS,ENV): FUZZ_SECONDS of fuzzing, keeping DIR/corpus between runs.
define fuzz_long
	mkdir -p $(2)/corpus
	$(4) $(1) -max_total_time=$(FUZZ_SECONDS) $(3) -artifact_prefix=$(2)/ $(2)/corpus $(2)/seed
endef

.PHONY: fuzz
# Every harness, one after another (make -jN fuzz runs them side by side).
fuzz: fuzz-image fuzz-tokenizer fuzz-model fuzz-index
