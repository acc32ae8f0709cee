# Images (lib/image_decode.c, lib/image_preprocess.c): test steps besides test/c/test_image.c and
# test/python/test_image_parity.py, which test-c and test-python run.
#   test-image-valgrind  test_image under valgrind (leaks, memory errors, longjmp error paths)
#   test-fuzz-image      a bounded libFuzzer run (IMG_FUZZ_SECONDS, default 30)
#   fuzz-image           a long libFuzzer run (FUZZ_SECONDS, default 3600), keeping its corpus
# They build an image-only library (no libtorch) under $(BUILD)/tmp-image.

IMG_DIR := $(BUILD)/tmp-image
IMG_SRCS := lib/error.c lib/tensor.c lib/file_input.c lib/image_source.c lib/image_decode.c lib/image_preprocess.c
IMG_HDRS := include/jaclip.h lib/internal.h lib/image.h
IMG_LIB := $(IMG_DIR)/libjaclip-image.so
IMG_TEST := $(IMG_DIR)/test_image
IMG_FUZZ_DIR := $(BUILD)/fuzz-image
IMG_FUZZ := $(IMG_FUZZ_DIR)/fuzz_image
IMG_FUZZ_SECONDS ?= 30
FUZZ_SECONDS ?= 3600
CLANG ?= clang
IMG_ENV := JACLIP_SHARED_DATA=$(SHARED_DATA) JACLIP_PROJECT_DATA=data
IMG_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
IMG_LIBS := $(shell pkg-config --libs libjpeg libpng16 2>/dev/null) -lz -lm -lpthread
IMG_CFLAGS := $(shell pkg-config --cflags libjpeg libpng16 2>/dev/null)

$(IMG_DIR)/.dir:
	mkdir -p $(IMG_DIR) && touch $@

$(IMG_LIB): $(IMG_SRCS) $(IMG_HDRS) | $(IMG_DIR)/.dir
	$(CC) $(CFLAGS_LIB) -shared -Wl,--no-undefined -o $@ $(IMG_SRCS) $(IMG_LIBS)

$(IMG_TEST): test/c/test_image.c test/c/check.h $(IMG_LIB)
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Iinclude -o $@ $< $(abspath $(IMG_LIB)) -lm

.PHONY: test-image-valgrind test-fuzz-image fuzz-image
test-image-valgrind: $(IMG_TEST)
	$(IMG_ENV) valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
		--error-exitcode=99 $(IMG_TEST)

# ---- fuzzing: clang with sanitizers over the C sources (not the .so) -----------------------------
$(IMG_FUZZ): test/fuzz/fuzz_image.c $(IMG_SRCS) $(IMG_HDRS)
	mkdir -p $(IMG_FUZZ_DIR)
	$(CLANG) -std=c11 -D_GNU_SOURCE -O1 -g -ffp-contract=off $(IMG_SAN) -fsanitize=fuzzer -Iinclude -Ilib \
		$(IMG_CFLAGS) -o $@ test/fuzz/fuzz_image.c $(IMG_SRCS) $(IMG_LIBS)

# Seeds: the shared JPEG/PNG test images copied at run time (never committed); two bare signatures
# when the shared data is absent.
$(IMG_FUZZ_DIR)/seed/.done:
	rm -rf $(IMG_FUZZ_DIR)/seed && mkdir -p $(IMG_FUZZ_DIR)/seed
	@if [ -d $(SHARED_DATA)/images ]; then \
	  find $(SHARED_DATA)/images -type f \( -name '*.png' -o -name '*.jpg' -o -name '*.jpeg' \) -size -200k \
	    -exec cp {} $(IMG_FUZZ_DIR)/seed/ \; ; \
	else echo "$(SHARED_DATA)/images is missing: fuzzing from two bare signatures only"; fi
	printf '\377\330\377\340' > $(IMG_FUZZ_DIR)/seed/jpeg-signature
	printf '\211PNG\r\n\032\n' > $(IMG_FUZZ_DIR)/seed/png-signature
	touch $@

test-fuzz-image: $(IMG_FUZZ) $(IMG_FUZZ_DIR)/seed/.done
	@echo "fuzzing the image pipeline for $(IMG_FUZZ_SECONDS) s (log: $(IMG_FUZZ_DIR)/fuzz.log)"
	@rm -rf $(IMG_FUZZ_DIR)/run-corpus && mkdir -p $(IMG_FUZZ_DIR)/run-corpus
	@if $(IMG_FUZZ) -max_total_time=$(IMG_FUZZ_SECONDS) -timeout=20 -rss_limit_mb=2048 -max_len=262144 \
	    -artifact_prefix=$(IMG_FUZZ_DIR)/ $(IMG_FUZZ_DIR)/run-corpus $(IMG_FUZZ_DIR)/seed \
	    > $(IMG_FUZZ_DIR)/fuzz.log 2>&1; then \
	  grep -E '^Done [0-9]+ runs' $(IMG_FUZZ_DIR)/fuzz.log; \
	else tail -n 60 $(IMG_FUZZ_DIR)/fuzz.log; echo "fuzz_image failed; the input is in $(IMG_FUZZ_DIR)/"; exit 1; fi

fuzz-image: $(IMG_FUZZ) $(IMG_FUZZ_DIR)/seed/.done
	mkdir -p $(IMG_FUZZ_DIR)/corpus
	$(IMG_FUZZ) -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=2048 -max_len=262144 \
		-artifact_prefix=$(IMG_FUZZ_DIR)/ $(IMG_FUZZ_DIR)/corpus $(IMG_FUZZ_DIR)/seed

TEST_STEPS += test-image-valgrind test-fuzz-image
