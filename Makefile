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

VERSION := 0.1.0
SOMAJOR := 1
SONAME := libjaclip.so.$(SOMAJOR)

TORCH_DIR ?=
ifeq ($(TORCH_DIR),)
TORCH_CXXFLAGS := -I/usr/include/torch/csrc/api/include
TORCH_LIBS := -ltorch -ltorch_cpu -lc10
else
# Wheels of PyTorch may use the old C++ ABI: read it from the build itself unless given.
TORCH_CXX11_ABI ?= $(shell grep -qs '_GLIBCXX_USE_CXX11_ABI=0' $(TORCH_DIR)/share/cmake/Torch/TorchConfig.cmake && echo 0 || echo 1)
TORCH_CXXFLAGS := -isystem $(TORCH_DIR)/include -isystem $(TORCH_DIR)/include/torch/csrc/api/include \
	-D_GLIBCXX_USE_CXX11_ABI=$(TORCH_CXX11_ABI)
# A CUDA build's kernels live in libtorch_cuda, which nothing references directly: keep it linked.
CUDA_LINK := -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed
TORCH_CUDA_LIBS := $(if $(wildcard $(TORCH_DIR)/lib/libtorch_cuda.so),$(CUDA_LINK))
TORCH_LIBS := -L$(TORCH_DIR)/lib -Wl,-rpath,$(TORCH_DIR)/lib -ltorch -ltorch_cpu -lc10 $(TORCH_CUDA_LIBS)
endif

# SentencePiece is opened at run time, never linked (lib/tokenizer.cpp says why): headers only.
PKGS := libturbojpeg libjpeg libpng16 icu-uc
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) sentencepiece 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wno-unused-parameter
# -ffp-contract=off: preprocessing must round exactly as the reference's float32 ops do.
COMMON := -O2 -g -fPIC -fvisibility=hidden -ffp-contract=off -Iinclude -Ilib $(PKG_CFLAGS)
CFLAGS_LIB := -std=c11 -D_GNU_SOURCE $(COMMON) $(WARN) $(CFLAGS)
CXXFLAGS_LIB := -std=c++17 -D_GNU_SOURCE $(COMMON) $(WARN) $(CXXFLAGS)
LIB_LDLIBS := $(PKG_LIBS) -ldl -lm -lpthread
PLUGIN_LDLIBS := $(TORCH_LIBS) -lm -lpthread

LIB_C_SRCS := $(sort $(wildcard lib/*.c))
# torch_bridge.cpp / faiss_bridge.cpp are the only files that include libtorch / faiss (plugins).
LIB_CXX_SRCS := $(sort $(filter-out lib/torch_bridge.cpp lib/faiss_bridge.cpp,$(wildcard lib/*.cpp)))
LIB_OBJS := $(LIB_C_SRCS:lib/%.c=$(BUILD)/obj/%.o) $(LIB_CXX_SRCS:lib/%.cpp=$(BUILD)/obj/%.o)
# libjaclip itself never links libtorch: model.c reaches it through the plugin (lib/torch_bridge.h).
# Sanitizer and fuzz builds can therefore compile these same sources without it.
NOTORCH_SRCS := $(LIB_C_SRCS) $(LIB_CXX_SRCS)

SHLIB := $(BUILD)/libjaclip.so.$(VERSION)
STLIB := $(BUILD)/libjaclip.a
PLUGIN := $(BUILD)/libjaclip-torch.so.1

# Fragments in mk/ add build rules and test steps (TEST_STEPS, in order) for each part of the project.
TEST_STEPS :=

.PHONY: all lib setup demo test install uninstall clean check-setup test-models
all: lib

lib: $(SHLIB) $(BUILD)/libjaclip.so $(BUILD)/$(SONAME) $(STLIB) $(PLUGIN)

$(BUILD)/obj/%.o: lib/%.c include/jaclip.h lib/internal.h $(wildcard lib/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS_LIB) -c $< -o $@

# Files that embed an install path are rebuilt when the path changes: the stamp's name is a hash of it.
PREFIX_STAMP := $(BUILD)/obj/prefix-$(shell printf '%s' '$(PREFIX)|$(LIBDIR)|$(INCLUDEDIR)|$(BINDIR)' | md5sum | cut -c1-12)
$(PREFIX_STAMP): | $(BUILD)/obj
	rm -f $(BUILD)/obj/prefix-* && touch $@

# Where the static library looks for the plugin (the shared one looks beside itself first).
$(BUILD)/obj/torch_plugin.o: CFLAGS_LIB += -DJACLIP_PLUGIN_DIR='"$(LIBDIR)"'
$(BUILD)/obj/torch_plugin.o: $(PREFIX_STAMP)


$(BUILD)/obj/%.o: lib/%.cpp include/jaclip.h lib/internal.h $(wildcard lib/*.h) | $(BUILD)/obj
	$(CXX) $(CXXFLAGS_LIB) -c $< -o $@

$(BUILD)/obj/torch_bridge.o: lib/torch_bridge.cpp lib/torch_bridge.h lib/internal.h include/jaclip.h | $(BUILD)/obj
	$(CXX) $(CXXFLAGS_LIB) $(TORCH_CXXFLAGS) -Wno-shadow -c $< -o $@

$(BUILD)/obj:
	mkdir -p $@

$(PLUGIN): $(BUILD)/obj/torch_bridge.o
	$(CXX) -shared -Wl,-soname,libjaclip-torch.so.1 -Wl,--no-undefined -o $@ $< $(PLUGIN_LDLIBS)

$(SHLIB): $(LIB_OBJS) lib/jaclip.map
	$(CXX) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=lib/jaclip.map -Wl,--no-undefined \
		-o $@ $(LIB_OBJS) $(LIB_LDLIBS)

$(BUILD)/$(SONAME): $(SHLIB)
	ln -sf libjaclip.so.$(VERSION) $@
$(BUILD)/libjaclip.so: $(SHLIB)
	ln -sf libjaclip.so.$(VERSION) $@

$(STLIB): $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/jaclip.pc: pkgconfig/jaclip.pc.in Makefile $(PREFIX_STAMP) | $(BUILD)/obj
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@REQUIRES_PRIVATE@|$(PKGS)|' \
	    -e 's|@LIBS_PRIVATE@|-lstdc++ -ldl -lm -lpthread|' $< > $@

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
install: lib $(BUILD)/jaclip.pc
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)
	install -m 644 include/jaclip.h $(DESTDIR)$(INCLUDEDIR)/jaclip.h
	$(if $(wildcard include/jaclip.hpp),install -m 644 include/jaclip.hpp $(DESTDIR)$(INCLUDEDIR)/jaclip.hpp)
	install -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/libjaclip.so.$(VERSION)
	install -m 755 $(PLUGIN) $(DESTDIR)$(LIBDIR)/libjaclip-torch.so.1
	ln -sf libjaclip.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf libjaclip.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libjaclip.so
	install -m 644 $(STLIB) $(DESTDIR)$(LIBDIR)/libjaclip.a
	install -m 644 $(BUILD)/jaclip.pc $(DESTDIR)$(LIBDIR)/pkgconfig/jaclip.pc
	$(INSTALL_EXTRA)

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/jaclip.h $(DESTDIR)$(INCLUDEDIR)/jaclip.hpp \
	      $(DESTDIR)$(LIBDIR)/libjaclip.so* $(DESTDIR)$(LIBDIR)/libjaclip.a $(DESTDIR)$(LIBDIR)/libjaclip-torch.so.1 \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/jaclip.pc

clean:
	rm -rf $(BUILD)

include $(sort $(wildcard mk/*.mk))

# ---- test: every step the fragments registered, in order -----------------------------------------
test: check-setup
	$(MAKE) --no-print-directory lib test-models
	@failed=0; for step in $(TEST_STEPS); do \
	  echo "==== $$step"; \
	  if $(MAKE) --no-print-directory $$step; then echo "==== $$step: ok"; \
	  else echo "==== $$step: FAILED"; failed=$$((failed+1)); fi; \
	done; \
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
