# Images (lib/image/): test steps besides test/c/test_image.c and
# test/python/test_image_parity.py, which test-c and test-python run.
#   test-image-valgrind  test_image under valgrind (leaks, memory errors, longjmp error paths)
#   test-fuzz-image      a bounded libFuzzer run (IMG_FUZZ_SECONDS, default 30)
#   test-fuzz-image-FMT  the same harness seeded with one format's files (webp gif bmp tiff heif;
#                        IMG_FUZZ_FORMAT_SECONDS each, default 15)
#   fuzz-image           a long libFuzzer run (FUZZ_SECONDS, default 3600), keeping its corpus
# They build an image-only library (no libtorch) under $(BUILD)/tmp-image.

IMG_DIR := $(BUILD)/tmp-image
IMG_SRCS := $(COMMON_SRCS) $(IMAGE_SRCS)
IMG_LIB := $(IMG_DIR)/libjaclip-image.so
IMG_TEST := $(IMG_DIR)/test_image
IMG_FUZZ_DIR := $(BUILD)/fuzz-image
IMG_FUZZ := $(IMG_FUZZ_DIR)/fuzz_image
IMG_FUZZ_SECONDS ?= 30
IMG_FUZZ_ARGS := -timeout=20 -rss_limit_mb=2048 -max_len=262144
IMG_ENV := JACLIP_SHARED_DATA=$(SHARED_DATA) JACLIP_PROJECT_DATA=data
IMG_LIBS := $(shell pkg-config --libs libjpeg libpng16 libwebp libwebpdemux libheif libtiff-4 zlib 2>/dev/null) \
	$(IMAGE_EXTRA_LIBS) -lm -lpthread

$(IMG_LIB): $(call lib_objs,$(BUILD)/obj,$(IMG_SRCS))
	@mkdir -p $(@D)
	$(CC) -shared -Wl,--no-undefined -o $@ $^ $(IMG_LIBS)

$(IMG_TEST): test/c/test_image.c test/c/check.h $(IMG_LIB)
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Iinclude -o $@ $< $(abspath $(IMG_LIB)) -lm

.PHONY: test-image-valgrind test-fuzz-image fuzz-image
test-image-valgrind: $(IMG_TEST)
	$(IMG_ENV) JACLIP_TEST_UNDER_VALGRIND=1 valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
		--error-exitcode=99 $(IMG_TEST)

# ---- fuzzing (mk/05-fuzz.mk) ----------------------------------------------------------------------
$(IMG_FUZZ): test/fuzz/fuzz_image.c $(call fuzz_objs,$(IMG_SRCS))
	$(call fuzz_link,$(IMG_LIBS))

# Seeds: the shared JPEG/PNG test images copied at run time (never committed), the project's WebP, GIF,
# BMP, TIFF and HEIF files (data/images-pillow, data/images-generated), the inputs the fuzzers once
# failed on (test/fuzz/image-regressions), and each format's bare signature.
IMG_FORMAT_DATA := data/images-pillow data/images-generated
$(IMG_FUZZ_DIR)/seed/.done: $(wildcard test/fuzz/image-regressions/*)
	rm -rf $(IMG_FUZZ_DIR)/seed && mkdir -p $(IMG_FUZZ_DIR)/seed
	@if [ -d $(SHARED_DATA)/images ]; then \
	  find $(SHARED_DATA)/images -type f \( -name '*.png' -o -name '*.jpg' -o -name '*.jpeg' \) -size -200k \
	    -exec cp {} $(IMG_FUZZ_DIR)/seed/ \; ; \
	else echo "$(SHARED_DATA)/images is missing: fuzzing JPEG and PNG from bare signatures only"; fi
	find $(IMG_FORMAT_DATA) test/fuzz/image-regressions -type f -size -200k ! -name '*.txt' ! -name 'LICENSE*' \
	  -exec sh -c 'cp "$$1" $(IMG_FUZZ_DIR)/seed/$$(echo "$$1" | tr / _)' _ {} \;
	printf '\377\330\377\340' > $(IMG_FUZZ_DIR)/seed/jpeg-signature
	printf '\211PNG\r\n\032\n' > $(IMG_FUZZ_DIR)/seed/png-signature
	printf 'RIFF\0\0\0\0WEBPVP8X' > $(IMG_FUZZ_DIR)/seed/webp-signature
	printf 'GIF89a' > $(IMG_FUZZ_DIR)/seed/gif-signature
	printf 'BM' > $(IMG_FUZZ_DIR)/seed/bmp-signature
	printf 'II*\0\010\0\0\0' > $(IMG_FUZZ_DIR)/seed/tiff-signature
	printf '\0\0\0\030ftypheic' > $(IMG_FUZZ_DIR)/seed/heif-signature
	touch $@

test-fuzz-image: $(IMG_FUZZ) $(IMG_FUZZ_DIR)/seed/.done
	@echo "fuzzing the image pipeline for $(IMG_FUZZ_SECONDS) s (log: $(IMG_FUZZ_DIR)/fuzz.log)"
	$(call fuzz_bounded,fuzz_image,$(IMG_FUZZ),$(IMG_FUZZ_DIR),-max_total_time=$(IMG_FUZZ_SECONDS) $(IMG_FUZZ_ARGS))

# One bounded run per decoder beside JPEG and PNG (the same harness, seeded with that format's files
# only, so its time goes to that decoder): test-fuzz-image-webp, -gif, -bmp, -tiff, -heif.
IMG_FUZZ_FORMAT_SECONDS ?= 15
IMG_FUZZ_FORMATS := webp gif bmp tiff heif
img_fuzz_patterns_webp := *.webp
img_fuzz_patterns_gif := *.gif
img_fuzz_patterns_bmp := *.bmp
img_fuzz_patterns_tiff := *.tif *.tiff
img_fuzz_patterns_heif := *.heic *.heif *.avif
define img_fuzz_format
$(IMG_FUZZ_DIR)-$(1)/seed/.done: $(IMG_FUZZ_DIR)/seed/.done
	rm -rf $$(@D) && mkdir -p $$(@D)
	cd $(IMG_FUZZ_DIR)/seed && for p in $(img_fuzz_patterns_$(1)) $(1)-signature; do \
	  for f in $$$$p; do [ -f "$$$$f" ] && cp "$$$$f" $$(abspath $$(@D))/; done; done; true
	touch $$@
.PHONY: test-fuzz-image-$(1)
test-fuzz-image-$(1): $(IMG_FUZZ) $(IMG_FUZZ_DIR)-$(1)/seed/.done
	@echo "fuzzing the $(1) decoder for $(IMG_FUZZ_FORMAT_SECONDS) s (log: $(IMG_FUZZ_DIR)-$(1)/fuzz.log)"
	$$(call fuzz_bounded,fuzz_image-$(1),$(IMG_FUZZ),$(IMG_FUZZ_DIR)-$(1),-max_total_time=$(IMG_FUZZ_FORMAT_SECONDS) $(IMG_FUZZ_ARGS))
TEST_STEPS += test-fuzz-image-$(1)
endef
$(foreach f,$(IMG_FUZZ_FORMATS),$(eval $(call img_fuzz_format,$(f))))

fuzz-image: $(IMG_FUZZ) $(IMG_FUZZ_DIR)/seed/.done
	$(call fuzz_long,$(IMG_FUZZ),$(IMG_FUZZ_DIR),$(IMG_FUZZ_ARGS))

TEST_STEPS += test-image-valgrind test-fuzz-image
