# libjaclip build. `make` builds the libraries; `make demo` and `make test` also install what is missing
# (tools/setup-deps) first. Other libtorch builds: `make TORCH_DIR=/path/to/torch` (the directory that
# holds include/ and lib/, e.g. site-packages/torch of a CUDA PyTorch).

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
DESTDIR ?=
PYTHON ?= /usr/bin/python3
RUBY ?= ruby
CC ?= cc
CXX ?= g++
BUILD ?= build
SHARED_DATA ?= ../shared/data

.PHONY: all setup demo test install uninstall clean check-setup test-models
all: lib

# The library and its plugins: flags, sources by module folder, the version (read from include/jaclip.h).
include mk/lib.mk

# Fragments in mk/ add build rules and test steps (TEST_STEPS, in order) for each part of the project.
TEST_STEPS :=

# ---- set-up: installs the Debian packages the project needs (idempotent, quick when all present) --
setup:
	tools/setup-deps

check-setup:
	@tools/setup-deps --check >/dev/null 2>&1 || tools/setup-deps

# ---- models generated for tests and the demo ---------------------------------------------------
TOKENIZER_MODEL := data/rinna-japanese-spiece.model
TEST_MODEL_DIR := $(BUILD)/models
TINY_CKPT := $(TEST_MODEL_DIR)/tiny-checkpoint
TINY_MODEL := $(TEST_MODEL_DIR)/tiny.jaclip
TINY_MODEL_BF16 := $(TEST_MODEL_DIR)/tiny-bf16.jaclip
TINY_MODEL_INT8 := $(TEST_MODEL_DIR)/tiny-int8.jaclip
CONVERT_DEPS := tools/jaclip-convert tools/jaclip_convert/*.py

$(TINY_CKPT)/config.json: tools/jaclip-make-test-model $(CONVERT_DEPS)
	$(PYTHON) tools/jaclip-make-test-model --size tiny $(TINY_CKPT)

$(TINY_MODEL): $(TINY_CKPT)/config.json $(TOKENIZER_MODEL)
	$(PYTHON) tools/jaclip-convert $(TINY_CKPT) $@ --tokenizer $(TOKENIZER_MODEL)

$(TINY_MODEL_BF16): $(TINY_CKPT)/config.json $(TOKENIZER_MODEL)
	$(PYTHON) tools/jaclip-convert $(TINY_CKPT) $@ --tokenizer $(TOKENIZER_MODEL) --dtype bf16

$(TINY_MODEL_INT8): $(TINY_CKPT)/config.json $(TOKENIZER_MODEL)
	$(PYTHON) tools/jaclip-convert $(TINY_CKPT) $@ --tokenizer $(TOKENIZER_MODEL) --dtype int8

test-models: $(TINY_MODEL) $(TINY_MODEL_BF16) $(TINY_MODEL_INT8)

# ---- install ------------------------------------------------------------------------------------
# Everything a user of the library, the command and the bindings needs (fragments add theirs through
# INSTALL_EXTRA). LIBDIR may be a multiarch folder (Debian's packages: LIBDIR=/usr/lib/x86_64-linux-gnu).
# The dynamic linker knows these folders; installing into one of them (DESTDIR empty, as root) runs
# ldconfig, as libtool's --finish does. README's Install section says what to set for other prefixes.
# LINKER_DEFAULT_LIBDIRS are searched even without ld.so.cache: what is installed there carries no rpath
# (the command, jaclip.pc); everything else does.
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
LINKER_DEFAULT_LIBDIRS := /lib /usr/lib $(if $(MULTIARCH),/lib/$(MULTIARCH) /usr/lib/$(MULTIARCH))
SYSTEM_LIBDIRS := $(LINKER_DEFAULT_LIBDIRS) /usr/local/lib $(if $(MULTIARCH),/usr/local/lib/$(MULTIARCH))
LDCONFIG ?= ldconfig
install: lib $(BUILD)/jaclip.pc
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)
	install -m 644 include/jaclip.h $(DESTDIR)$(INCLUDEDIR)/jaclip.h
	$(if $(wildcard include/jaclip.hpp),install -m 644 include/jaclip.hpp $(DESTDIR)$(INCLUDEDIR)/jaclip.hpp)
	install -m 644 $(SHLIB) $(DESTDIR)$(LIBDIR)/libjaclip.so.$(VERSION)
	install -m 644 $(PLUGIN) $(DESTDIR)$(LIBDIR)/libjaclip-torch.so.1
	ln -sf libjaclip.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf libjaclip.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libjaclip.so
	install -m 644 $(STLIB) $(DESTDIR)$(LIBDIR)/libjaclip.a
	install -m 644 $(BUILD)/jaclip.pc $(DESTDIR)$(LIBDIR)/pkgconfig/jaclip.pc
	$(INSTALL_EXTRA)
	$(if $(DESTDIR),,$(if $(filter $(LIBDIR),$(SYSTEM_LIBDIRS)),@if [ "$$(id -u)" = 0 ]; then echo $(LDCONFIG); $(LDCONFIG); fi))

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/jaclip.h $(DESTDIR)$(INCLUDEDIR)/jaclip.hpp \
	      $(DESTDIR)$(LIBDIR)/libjaclip.so* $(DESTDIR)$(LIBDIR)/libjaclip.a $(DESTDIR)$(LIBDIR)/libjaclip-torch.so.1 \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/jaclip.pc

clean:
	rm -rf $(BUILD)

include $(sort $(wildcard mk/[0-9]*.mk))

# ---- test: every step the fragments registered, in order -----------------------------------------
test: check-setup
	$(MAKE) --no-print-directory lib test-models
	@failed=0; times=""; begin=$$(date +%s); for step in $(TEST_STEPS); do \
	  echo "==== $$step"; t0=$$(date +%s); \
	  if $(MAKE) --no-print-directory $$step; then result=ok; \
	  else result=FAILED; failed=$$((failed+1)); fi; \
	  s=$$(( $$(date +%s) - t0 )); echo "==== $$step: $$result ($$s s)"; times="$$times$$s $$step\n"; \
	done; \
	echo "slowest steps:" $$(printf "$$times" | sort -rn | head -n 5 | awk '{printf "%s %s s;", $$2, $$1}'); \
	echo "total: $$(( $$(date +%s) - begin )) s on $$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')," \
	  "load average $$(cut -d' ' -f1-3 /proc/loadavg)"; \
	total=$(words $(TEST_STEPS)); echo "steps: $$((total-failed)) passed, $$failed failed"; \
	test $$failed -eq 0

# ---- the demo: a zero-shot classification of the reference photo with 犬/猫/象 -------------------
# DEMO_MODEL may name a converted real checkpoint; by default a generated tiny random-weight model.
DEMO_MODEL ?= $(TINY_MODEL)
DEMO_IMAGE ?= data/dog.jpeg

$(BUILD)/examples/classify: examples/classify.c include/jaclip.h $(SHLIB)
	@mkdir -p $(BUILD)/examples
	$(CC) -std=c99 -O2 -Wall -Wextra -Iinclude -o $@ $< -L$(BUILD) -ljaclip -Wl,-rpath,$(abspath $(BUILD))

demo: check-setup
	$(MAKE) --no-print-directory lib $(BUILD)/examples/classify $(DEMO_MODEL)
	@echo
	$(BUILD)/examples/classify $(DEMO_MODEL) $(DEMO_IMAGE) 犬 猫 象
	@echo
	@if [ "$(DEMO_MODEL)" = "$(TINY_MODEL)" ]; then \
	  echo "NOTE: this model has RANDOM weights (generated by tools/jaclip-make-test-model), so the"; \
	  echo "probabilities above are meaningless. Convert the real rinna/japanese-cloob-vit-b-16 checkpoint"; \
	  echo "(README, \"Using the real model\") and run: make demo DEMO_MODEL=path/to/model.jaclip"; fi
