# The library: every flag, source list and object rule of libjaclip.so / libjaclip.a and its two plugins
# (libjaclip-torch.so.1, libjaclip-faiss.so.1). Included by the Makefile before the numbered fragments.
# Sources are taken by folder (docs/architecture.md names each one): a file added to lib/<module>/ is
# compiled and linked without an edit here; the tokenizer-only, image-only, sanitizer and fuzz builds of
# the other fragments take their lists from the module variables below.

# ---- version: read from include/jaclip.h, as zstd's Makefile does ---------------------------------
jaclip_version_part = $(shell sed -n '/define JACLIP_VERSION_$(1) /s/.*[[:blank:]]\([0-9][0-9]*\).*/\1/p' include/jaclip.h)
VERSION_MAJOR := $(call jaclip_version_part,MAJOR)
VERSION_MINOR := $(call jaclip_version_part,MINOR)
VERSION_PATCH := $(call jaclip_version_part,PATCH)
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)
VERSION_NUMBER := $(shell echo $$(( $(VERSION_MAJOR) * 10000 + $(VERSION_MINOR) * 100 + $(VERSION_PATCH) )))
ifneq ($(words $(VERSION_MAJOR) $(VERSION_MINOR) $(VERSION_PATCH)),3)
$(error cannot read JACLIP_VERSION_MAJOR/MINOR/PATCH from include/jaclip.h)
endif
# The ABI's major number (docs/abi.md): changes only for an incompatible change, not with VERSION.
SOMAJOR := 1
SONAME := libjaclip.so.$(SOMAJOR)

# ---- libtorch (the torch plugin only) ---------------------------------------------------------------
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
PLUGIN_LDLIBS := $(TORCH_LIBS) -lm -lpthread

# ---- faiss (the faiss plugin only) ------------------------------------------------------------------
# Debian's libfaiss-dev ships a static libfaiss.a only: the plugin links it whole with its BLAS
# (libblas.so.3, OpenBLAS via Debian's alternatives) and OpenMP, so libjaclip.so needs none of them.
FAISS_STATIC ?= /usr/lib/x86_64-linux-gnu/libfaiss.a
FAISS_LDLIBS := $(FAISS_STATIC) -fopenmp -lblas -llapack -lm -lpthread

# ---- libjaclip's own dependencies -------------------------------------------------------------------
# libjpeg(-turbo), libpng, libwebp (+ its demuxer), libheif, libtiff and giflib (no .pc: -lgif) decode
# images (lib/image), ICU folds text (lib/text), zlib checks CRCs (index files, model archives, PNG chunks). SentencePiece is opened at run time, never linked
# (lib/text/tokenizer.cpp says why): its headers only. A DT_NEEDED on it would load it globally again.
PKGS := libjpeg libpng16 libwebp libwebpdemux libheif libtiff-4 icu-uc zlib
IMAGE_EXTRA_LIBS := -lgif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) sentencepiece 2>/dev/null)
PKG_LIBS := $(filter-out -lsentencepiece -lsentencepiece_train,$(shell pkg-config --libs $(PKGS) 2>/dev/null))

WARN := -Wall -Wextra -Wshadow -Wno-unused-parameter
# -ffp-contract=off: preprocessing must round exactly as the reference's float32 ops do.
COMMON := -O2 -g -fPIC -fvisibility=hidden -ffp-contract=off -Iinclude -Ilib $(PKG_CFLAGS)
CFLAGS_LIB := -std=c11 -D_GNU_SOURCE $(COMMON) $(WARN) $(CFLAGS)
CXXFLAGS_LIB := -std=c++17 -D_GNU_SOURCE $(COMMON) $(WARN) $(CXXFLAGS)
LIB_LDLIBS := $(PKG_LIBS) $(IMAGE_EXTRA_LIBS) -ldl -lm -lpthread

# ---- sources, by module -----------------------------------------------------------------------------
module_srcs = $(sort $(wildcard lib/$(1)/*.c lib/$(1)/*.cpp))
COMMON_SRCS := $(call module_srcs,common)
IMAGE_SRCS := $(call module_srcs,image)
TEXT_SRCS := $(call module_srcs,text)
MODEL_SRCS := $(call module_srcs,model)
INDEX_SRCS := $(call module_srcs,index)
ZEROSHOT_SRCS := $(call module_srcs,zeroshot)
ANN_SRCS := $(call module_srcs,ann)
# The plugins' sides (*_bridge.cpp, the only files that include libtorch / faiss) are built into their
# own libraries; the loaders beside them (*_plugin.c) are part of libjaclip.
TORCH_BRIDGE_SRCS := lib/backend/torch/torch_bridge.cpp
FAISS_BRIDGE_SRCS := lib/backend/faiss/faiss_bridge.cpp
BACKEND_SRCS := $(filter-out $(TORCH_BRIDGE_SRCS) $(FAISS_BRIDGE_SRCS),$(call module_srcs,backend) \
	$(call module_srcs,backend/torch) $(call module_srcs,backend/faiss))
# libjaclip itself never links libtorch or faiss, so sanitizer and fuzz builds compile these same sources.
LIB_SRCS := $(COMMON_SRCS) $(IMAGE_SRCS) $(TEXT_SRCS) $(MODEL_SRCS) $(INDEX_SRCS) $(ZEROSHOT_SRCS) \
	$(ANN_SRCS) $(BACKEND_SRCS)
LIB_HDRS := include/jaclip.h $(wildcard lib/*/*.h lib/*/*/*.h)
ifneq ($(wildcard lib/*.c lib/*.cpp),)
$(error $(wildcard lib/*.c lib/*.cpp): every source belongs to a module folder of lib/ (docs/architecture.md))
endif

# $(call lib_objs,DIR,SRCS): the objects of SRCS (all of LIB_SRCS if empty) under DIR, one per source,
# in the source's module folder: lib/common/error.c -> DIR/common/error.o.
lib_objs = $(patsubst lib/%,$(1)/%.o,$(basename $(or $(2),$(LIB_SRCS))))
LIB_OBJS := $(call lib_objs,$(BUILD)/obj)

SHLIB := $(BUILD)/libjaclip.so.$(VERSION)
STLIB := $(BUILD)/libjaclip.a
PLUGIN := $(BUILD)/libjaclip-torch.so.1
FAISS_PLUGIN := $(BUILD)/libjaclip-faiss.so.1

.PHONY: lib
# The torch plugin first: its one file takes longer to compile than the rest of the library, so with
# -j2 it runs beside everything else instead of after it.
lib: $(PLUGIN) $(FAISS_PLUGIN) $(SHLIB) $(BUILD)/libjaclip.so $(BUILD)/$(SONAME) $(STLIB)

$(BUILD)/obj/%.o: lib/%.c $(LIB_HDRS) | $(BUILD)/obj
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_LIB) -c $< -o $@

$(BUILD)/obj/%.o: lib/%.cpp $(LIB_HDRS) | $(BUILD)/obj
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS_LIB) -c $< -o $@

$(BUILD)/obj:
	mkdir -p $@

# Files that embed an install path are rebuilt when the path changes: the stamp's name is a hash of it.
PREFIX_STAMP := $(BUILD)/obj/prefix-$(shell printf '%s' '$(PREFIX)|$(LIBDIR)|$(INCLUDEDIR)|$(BINDIR)' | md5sum | cut -c1-12)
$(PREFIX_STAMP): | $(BUILD)/obj
	rm -f $(BUILD)/obj/prefix-* && touch $@

# Where the static library looks for the plugins (the shared one looks beside itself first).
PLUGIN_LOADER_OBJS := $(call lib_objs,$(BUILD)/obj,$(BACKEND_SRCS))
$(PLUGIN_LOADER_OBJS): CFLAGS_LIB += -DJACLIP_PLUGIN_DIR='"$(LIBDIR)"'
$(PLUGIN_LOADER_OBJS): $(PREFIX_STAMP)

# The search scan must vectorise; -O3 lets gcc unroll it. -ffp-contract=off stays: the AVX2 and
# baseline clones then round identically.
$(call lib_objs,$(BUILD)/obj,$(INDEX_SRCS)): CFLAGS_LIB += -O3

$(call lib_objs,$(BUILD)/obj,$(ZEROSHOT_SRCS)): lib/zeroshot/zeroshot_presets.inc

# -fopenmp: at::parallel_for is inline and runs serially in a file built without OpenMP.
$(call lib_objs,$(BUILD)/obj,$(TORCH_BRIDGE_SRCS)): CXXFLAGS_LIB += $(TORCH_CXXFLAGS) -Wno-shadow -fopenmp
$(call lib_objs,$(BUILD)/obj,$(FAISS_BRIDGE_SRCS)): CXXFLAGS_LIB += -fopenmp

# lib/qlinear (int8-weight Linear layers) runs inside the torch plugin only; -O3 unrolls its kernels.
QLINEAR_SRCS := $(call module_srcs,qlinear)
QLINEAR_OBJS := $(call lib_objs,$(BUILD)/obj,$(QLINEAR_SRCS))
$(QLINEAR_OBJS): CFLAGS_LIB += -O3

$(PLUGIN): $(call lib_objs,$(BUILD)/obj,$(TORCH_BRIDGE_SRCS)) $(QLINEAR_OBJS)
	$(CXX) -shared -fopenmp -Wl,-soname,libjaclip-torch.so.1 -Wl,--no-undefined -o $@ $^ $(PLUGIN_LDLIBS)

# -Bsymbolic: the plugin's own operator new/delete (the read budget of faiss_bridge.cpp) serve its code.
$(FAISS_PLUGIN): $(call lib_objs,$(BUILD)/obj,$(FAISS_BRIDGE_SRCS))
	$(CXX) -shared -Wl,-soname,libjaclip-faiss.so.1 -Wl,--no-undefined -Wl,-Bsymbolic -o $@ $^ $(FAISS_LDLIBS)

$(SHLIB): $(LIB_OBJS) lib/jaclip.map
	$(CXX) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=lib/jaclip.map -Wl,--no-undefined \
		-o $@ $(LIB_OBJS) $(LIB_LDLIBS)

$(BUILD)/$(SONAME): $(SHLIB)
	ln -sf libjaclip.so.$(VERSION) $@
$(BUILD)/libjaclip.so: $(SHLIB)
	ln -sf libjaclip.so.$(VERSION) $@

$(STLIB): $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

# Outside the dynamic linker's default folders (LINKER_DEFAULT_LIBDIRS, Makefile) the .pc adds an rpath,
# so a program built with `pkg-config --libs jaclip` runs without LD_LIBRARY_PATH or ldconfig.
PC_RPATH = $(if $(filter $(LIBDIR),$(LINKER_DEFAULT_LIBDIRS)),,-Wl,-rpath,$${libdir} )
$(BUILD)/jaclip.pc: pkgconfig/jaclip.pc.in include/jaclip.h mk/lib.mk $(PREFIX_STAMP) | $(BUILD)/obj
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@RPATH@|$(PC_RPATH)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@REQUIRES_PRIVATE@|$(PKGS)|' \
	    -e 's|@LIBS_PRIVATE@|$(IMAGE_EXTRA_LIBS) -lstdc++ -ldl -lm -lpthread|' $< > $@

# ---- the version, for the bindings and the man page (generated, never committed) ---------------------
PY_VERSION_FILE := bindings/python/jaclip/_version.py
RB_VERSION_FILE := bindings/ruby/lib/jaclip/version.rb
MAN_PAGE := $(BUILD)/jaclip.1

$(PY_VERSION_FILE): include/jaclip.h mk/lib.mk
	printf '%s\n' '# Generated by make from include/jaclip.h (mk/lib.mk); not committed.' \
	  '__version__ = "$(VERSION)"' \
	  '# The C library version this package was written against (MAJOR * 10000 + MINOR * 100 + PATCH).' \
	  'EXPECTED_VERSION_NUMBER = $(VERSION_NUMBER)' > $@

$(RB_VERSION_FILE): include/jaclip.h mk/lib.mk
	printf '%s\n' '# Generated by make from include/jaclip.h (mk/lib.mk); not committed.' 'module Jaclip' \
	  '  VERSION = "$(VERSION)"' \
	  '  # The C library version this gem was written against (MAJOR * 10000 + MINOR * 100 + PATCH).' \
	  '  EXPECTED_VERSION_NUMBER = $(VERSION_NUMBER)' 'end' > $@

$(MAN_PAGE): docs/jaclip.1 include/jaclip.h | $(BUILD)/obj
	sed 's|@VERSION@|$(VERSION)|' $< > $@

lib: $(PY_VERSION_FILE) $(RB_VERSION_FILE)

# ---- the library's sources again, for sanitizer and fuzz builds (clang, no libtorch) ----------------
CLANG ?= clang
CLANGXX ?= clang++
SAN_COMMON := -O1 -g -D_GNU_SOURCE -ffp-contract=off -fno-omit-frame-pointer -Iinclude -Ilib $(PKG_CFLAGS) $(WARN)
# $(eval $(call san_rules,DIR,FLAGS)): rules that compile any library source into DIR (objects named
# as lib_objs names them) with the sanitizer / coverage FLAGS.
define san_rules
$(1)/%.o: lib/%.c $$(LIB_HDRS)
	@mkdir -p $$(@D)
	$$(CLANG) -std=c11 $$(SAN_COMMON) $(2) -c $$< -o $$@
$(1)/%.o: lib/%.cpp $$(LIB_HDRS)
	@mkdir -p $$(@D)
	$$(CLANGXX) -std=c++17 $$(SAN_COMMON) $(2) -c $$< -o $$@
endef
