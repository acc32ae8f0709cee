# Tokenizer (lib/text/): its own test steps besides test/c/test_tokenizer.c and
# test/python/test_tokenizer_parity.py, which test-c and test-python run.
#   test-tokenizer-lowercase  lower-casing of every code point against Python's str.lower
#   test-tokenizer-valgrind   test_tokenizer under valgrind (leaks and memory errors)
#   test-fuzz-tokenizer       a bounded libFuzzer run (TOK_FUZZ_SECONDS, default 30)
#   fuzz-tokenizer            a long libFuzzer run (FUZZ_SECONDS, default 3600), keeping its corpus
# The first three build a tokenizer-only library (no libtorch, no version script, so internal
# symbols stay visible) under $(BUILD)/tmp-tok.

# lib/text/tokenizer.cpp dlopens libsentencepiece (mk/lib.mk keeps it out of every link).
TOK_LIBS := $(PKG_LIBS) -ldl
TOK_DIR := $(BUILD)/tmp-tok
TOK_SRCS := $(COMMON_SRCS) $(TEXT_SRCS)
TOK_LIB := $(TOK_DIR)/libjaclip-tokenizer.so
TOK_TEST := $(TOK_DIR)/test_tokenizer
TOK_FUZZ_DIR := $(BUILD)/fuzz
TOK_FUZZ := $(TOK_FUZZ_DIR)/fuzz_tokenizer
TOK_FUZZ_SECONDS ?= 30
TOK_FUZZ_ARGS := -timeout=10 -rss_limit_mb=2048
TOK_TEXTS := $(SHARED_DATA)/text/wagahaiwa_nekodearu.txt $(SHARED_DATA)/text/lemon.txt
TOK_ENV := JACLIP_PROJECT_DATA=data JACLIP_SHARED_DATA=$(SHARED_DATA)

# The library's flags but default visibility: the parity test reads internal symbols.
$(TOK_DIR)/%.o: lib/%.c $(LIB_HDRS)
	@mkdir -p $(@D)
	$(CC) $(filter-out -fvisibility=hidden,$(CFLAGS_LIB)) -c $< -o $@

$(TOK_DIR)/%.o: lib/%.cpp $(LIB_HDRS)
	@mkdir -p $(@D)
	$(CXX) $(filter-out -fvisibility=hidden,$(CXXFLAGS_LIB)) -c $< -o $@

$(TOK_LIB): $(call lib_objs,$(TOK_DIR),$(TOK_SRCS))
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

# ---- fuzzing (mk/05-fuzz.mk) ----------------------------------------------------------------------
$(TOK_FUZZ): test/fuzz/fuzz_tokenizer.cpp $(call fuzz_objs,$(TOK_SRCS))
	$(call fuzz_link,$(TOK_LIBS) -lm -lpthread)

# Seeds: the first lines of each text, each after a control byte of 0 (one text, 77 tokens); a few
# fixed strings when the shared data is absent; prefix-cut: one long spaced text framed at 2 (encode
# reads a prefix of it). Generated here, never committed.
$(BUILD)/fuzz/seed/.done:
	mkdir -p $(BUILD)/fuzz/seed
	i=0; for f in $(wildcard $(TOK_TEXTS)); do head -n 12 $$f | tr -d '\r' | while IFS= read -r line; do \
	  i=$$((i+1)); printf '\000%s' "$$line" > $(BUILD)/fuzz/seed/$$(basename $$f .txt)-$$i; done; done
	printf '\001犬[SEP]猫 <S> ΟΔΟΣ İ' > $(BUILD)/fuzz/seed/specials
	printf '\023吾輩は猫である。\013[MASK]\302\205 ＡＢＣ 😀' > $(BUILD)/fuzz/seed/mixed
	{ printf '\004'; for i in $$(seq 40); do printf '犬 猫\t写真\n😀😀 '; done; } > $(BUILD)/fuzz/seed/prefix-cut
	touch $@

test-fuzz-tokenizer: $(TOK_FUZZ) $(BUILD)/fuzz/seed/.done
	@echo "fuzzing the tokenizer for $(TOK_FUZZ_SECONDS) s (log: $(TOK_FUZZ_DIR)/fuzz.log)"
	$(call fuzz_bounded,fuzz_tokenizer,$(TOK_FUZZ),$(TOK_FUZZ_DIR),-max_total_time=$(TOK_FUZZ_SECONDS) $(TOK_FUZZ_ARGS),$(TOK_ENV))

fuzz-tokenizer: $(TOK_FUZZ) $(BUILD)/fuzz/seed/.done
	$(call fuzz_long,$(TOK_FUZZ),$(TOK_FUZZ_DIR),$(TOK_FUZZ_ARGS),$(TOK_ENV))

TEST_STEPS += test-tokenizer-lowercase test-tokenizer-valgrind test-fuzz-tokenizer
