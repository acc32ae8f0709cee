# Tokenizer (lib/tokenizer.cpp): its own test steps besides test/c/test_tokenizer.c and
# test/python/test_tokenizer_parity.py, which test-c and test-python run.
#   test-tokenizer-lowercase  lower-casing of every code point against Python's str.lower
#   test-tokenizer-valgrind   test_tokenizer under valgrind (leaks and memory errors)
#   test-fuzz-tokenizer       a bounded libFuzzer run (TOK_FUZZ_SECONDS, default 30)
#   fuzz-tokenizer            a long libFuzzer run (FUZZ_SECONDS, default 3600), keeping its corpus
# The first three build a tokenizer-only library (no libtorch, no version script, so internal
# symbols stay visible) under $(BUILD)/tmp-tok.

# lib/tokenizer.cpp dlopens libsentencepiece (its embedded protobuf clashes with libtorch's
# libprotobuf; see there), so nothing may link it: a DT_NEEDED on it would load it globally again.
TOK_NOT_LINKED := -lsentencepiece -lsentencepiece_train
LIB_LDLIBS := $(filter-out $(TOK_NOT_LINKED),$(LIB_LDLIBS))
TOK_LIBS := $(filter-out $(TOK_NOT_LINKED),$(PKG_LIBS)) -ldl

TOK_DIR := $(BUILD)/tmp-tok
TOK_SRCS := lib/error.c lib/tensor.c lib/file_input.c lib/tokenizer.cpp
TOK_HDRS := include/jaclip.h lib/internal.h
TOK_LIB := $(TOK_DIR)/libjaclip-tokenizer.so
TOK_TEST := $(TOK_DIR)/test_tokenizer
TOK_FUZZ := $(BUILD)/fuzz/fuzz_tokenizer
TOK_FUZZ_SECONDS ?= 30
FUZZ_SECONDS ?= 3600
TOK_TEXTS := $(SHARED_DATA)/text/wagahaiwa_nekodearu.txt $(SHARED_DATA)/text/lemon.txt
TOK_ENV := JACLIP_PROJECT_DATA=data JACLIP_SHARED_DATA=$(SHARED_DATA)
CLANG ?= clang
CLANGXX ?= clang++
TOK_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

$(TOK_DIR)/.dir:
	mkdir -p $(TOK_DIR) && touch $@

$(TOK_DIR)/%.o: lib/%.c $(TOK_HDRS) | $(TOK_DIR)/.dir
	$(CC) $(filter-out -fvisibility=hidden,$(CFLAGS_LIB)) -c $< -o $@

$(TOK_DIR)/%.o: lib/%.cpp $(TOK_HDRS) | $(TOK_DIR)/.dir
	$(CXX) $(filter-out -fvisibility=hidden,$(CXXFLAGS_LIB)) -c $< -o $@

# Every object of TOK_SRCS, so a source added there is linked too.
TOK_OBJS = $(patsubst lib/%,$(1)/%.o,$(basename $(TOK_SRCS)))

$(TOK_LIB): $(call TOK_OBJS,$(TOK_DIR))
	$(CXX) -shared -Wl,--no-undefined -o $@ $^ $(TOK_LIBS) -lm -lpthread

$(TOK_TEST): test/c/test_tokenizer.c test/c/check.h $(TOK_LIB)
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Iinclude -o $@ $< $(abspath $(TOK_LIB)) -lm -lpthread

.PHONY: test-tokenizer-lowercase test-tokenizer-valgrind test-fuzz-tokenizer fuzz-tokenizer
test-tokenizer-lowercase: $(TOK_LIB)
	$(TOK_ENV) JACLIP_LIBRARY=$(abspath $(TOK_LIB)) JACLIP_TOKENIZER_INTERNAL_LIBRARY=$(abspath $(TOK_LIB)) \
		$(PYTHON) -m pytest -q -rs -s test/python/test_tokenizer_parity.py -k lowercase_every_code_point

test-tokenizer-valgrind: $(TOK_TEST)
	$(TOK_ENV) valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
		--error-exitcode=99 $(TOK_TEST)

# ---- fuzzing: sanitized objects built with clang, no libtorch ------------------------------------
$(BUILD)/fuzz/.dir:
	mkdir -p $(BUILD)/fuzz/corpus $(BUILD)/fuzz/seed && touch $@

$(TOK_FUZZ): test/fuzz/fuzz_tokenizer.cpp $(TOK_SRCS) $(TOK_HDRS) | $(BUILD)/fuzz/.dir
	$(CLANG) -std=c11 -D_GNU_SOURCE -O1 -g $(TOK_SAN) -fsanitize=fuzzer-no-link -Iinclude -Ilib \
		-c lib/error.c -o $(BUILD)/fuzz/error.o
	$(CLANG) -std=c11 -D_GNU_SOURCE -O1 -g $(TOK_SAN) -fsanitize=fuzzer-no-link -Iinclude -Ilib \
		-c lib/tensor.c -o $(BUILD)/fuzz/tensor.o
	$(CLANG) -std=c11 -D_GNU_SOURCE -O1 -g $(TOK_SAN) -fsanitize=fuzzer-no-link -Iinclude -Ilib \
		-c lib/file_input.c -o $(BUILD)/fuzz/file_input.o
	$(CLANGXX) -std=c++17 -D_GNU_SOURCE -O1 -g $(TOK_SAN) -fsanitize=fuzzer-no-link -Iinclude -Ilib \
		$(PKG_CFLAGS) -c lib/tokenizer.cpp -o $(BUILD)/fuzz/tokenizer.o
	$(CLANGXX) -std=c++17 -O1 -g $(TOK_SAN) -fsanitize=fuzzer -Iinclude -o $@ test/fuzz/fuzz_tokenizer.cpp \
		$(BUILD)/fuzz/error.o $(BUILD)/fuzz/tensor.o $(BUILD)/fuzz/file_input.o $(BUILD)/fuzz/tokenizer.o \
		$(TOK_LIBS) -lm -lpthread

# Seeds: the first lines of each text, each after a control byte of 0 (one text, 77 tokens); a few
# fixed strings when the shared data is absent; prefix-cut: one long spaced text framed at 2 (encode
# reads a prefix of it). Generated here, never committed.
$(BUILD)/fuzz/seed/.done: | $(BUILD)/fuzz/.dir
	i=0; for f in $(wildcard $(TOK_TEXTS)); do head -n 12 $$f | tr -d '\r' | while IFS= read -r line; do \
	  i=$$((i+1)); printf '\000%s' "$$line" > $(BUILD)/fuzz/seed/$$(basename $$f .txt)-$$i; done; done
	printf '\001犬[SEP]猫 <S> ΟΔΟΣ İ' > $(BUILD)/fuzz/seed/specials
	printf '\023吾輩は猫である。\013[MASK]\302\205 ＡＢＣ 😀' > $(BUILD)/fuzz/seed/mixed
	{ printf '\004'; for i in $$(seq 40); do printf '犬 猫\t写真\n😀😀 '; done; } > $(BUILD)/fuzz/seed/prefix-cut
	touch $@

test-fuzz-tokenizer: $(TOK_FUZZ) $(BUILD)/fuzz/seed/.done
	@echo "fuzzing the tokenizer for $(TOK_FUZZ_SECONDS) s (log: $(BUILD)/fuzz/fuzz.log)"
	@rm -rf $(BUILD)/fuzz/run-corpus && mkdir -p $(BUILD)/fuzz/run-corpus
	@if $(TOK_ENV) $(TOK_FUZZ) -max_total_time=$(TOK_FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -artifact_prefix=$(BUILD)/fuzz/ $(BUILD)/fuzz/run-corpus $(BUILD)/fuzz/seed > $(BUILD)/fuzz/fuzz.log 2>&1; then \
	  grep -E '^Done [0-9]+ runs' $(BUILD)/fuzz/fuzz.log; \
	else tail -n 60 $(BUILD)/fuzz/fuzz.log; echo "fuzz_tokenizer failed; the input is in $(BUILD)/fuzz/"; exit 1; fi

fuzz-tokenizer: $(TOK_FUZZ) $(BUILD)/fuzz/seed/.done
	$(TOK_ENV) $(TOK_FUZZ) -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix=$(BUILD)/fuzz/ $(BUILD)/fuzz/corpus $(BUILD)/fuzz/seed

TEST_STEPS += test-tokenizer-lowercase test-tokenizer-valgrind test-fuzz-tokenizer
