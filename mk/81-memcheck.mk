# Memory checking of the programs that load libtorch: valgrind where it can run them, ASan + LSan +
# UBSan where it cannot (docs/reliability.md, "Memory checking"). Test steps:
#   test-valgrind-core  test_core (load / encode / free, every API path) under memcheck
#   test-valgrind-loop  valgrind_loop (a model's whole life, three times, and failing loads) under memcheck
#   test-asan-torch     both again under ASan + LSan + UBSan with an instrumented torch plugin, on every
#                       CPU, and the leak canary: LSan must report a tensor and a model lost on purpose
# Valgrind 3.19 refuses RDTSCP where CPUID hides it (Zen 5 VMs) and every AVX-512 instruction; libtorch
# loads libhwy (through OpenCV and libjxl), whose static initialiser executes RDTSCP. tools/valgrind-probe
# asks valgrind to load the torch plugin once per build folder and CPU: where it cannot, each valgrind
# step prints the probe's one line and runs the same test program under ASan + LSan + UBSan instead.

MEMCHECK_DIR := $(BUILD)/memcheck
# The instrumented plugin, the wrapper that drops RTLD_DEEPBIND (refused by sanitizer runtimes) and the
# test programs, all on the objects of test-sanitize (mk/80-reliability.mk).
ASAN_TORCH_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-sanitize=vptr
ASAN_TORCH_PLUGIN := $(MEMCHECK_DIR)/libjaclip-torch.so.1
ASAN_TORCH_BINS := $(MEMCHECK_DIR)/test_core $(MEMCHECK_DIR)/valgrind_loop $(MEMCHECK_DIR)/leak_canary
# detect_leaks is ASan's default on x86-64; named here because it is the point.
# intercept_tls_get_addr=0: clang 14's runtime guesses a dynamic TLS block's bounds from a header it
# expects 16 bytes into a page; where glibc 2.36 put libc10's block in static TLS surplus, the guess
# read garbage and LSan's tracer crashed (SIGSEGV scanning "DTLS 10 at 0x1dc1-0x2400002ec3"), for some
# plugin path lengths only. The canary shows leaks are still found without it.
ASAN_TORCH_ENV := JACLIP_TORCH_PLUGIN=$(abspath $(ASAN_TORCH_PLUGIN)) \
	ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:intercept_tls_get_addr=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

$(MEMCHECK_DIR)/torch_bridge.o: $(TORCH_BRIDGE_SRCS) $(LIB_HDRS)
	@mkdir -p $(@D)
	$(CLANGXX) -std=c++17 $(SAN_COMMON) -fPIC -fvisibility=hidden $(ASAN_TORCH_FLAGS) $(TORCH_CXXFLAGS) \
		-Wno-shadow -c $< -o $@
$(MEMCHECK_DIR)/qlinear.o: $(QLINEAR_SRCS) lib/qlinear/qlinear.h
	@mkdir -p $(@D)
	$(CLANG) -std=c11 $(SAN_COMMON) -fPIC -fvisibility=hidden $(ASAN_TORCH_FLAGS) -c $< -o $@
# No --no-undefined: the sanitizer runtime's symbols come from the (statically linked) program.
$(ASAN_TORCH_PLUGIN): $(MEMCHECK_DIR)/torch_bridge.o $(MEMCHECK_DIR)/qlinear.o
	$(CLANGXX) -shared $(ASAN_TORCH_FLAGS) -Wl,-soname,libjaclip-torch.so.1 -o $@ $^ $(PLUGIN_LDLIBS)

$(MEMCHECK_DIR)/deepbind_off.o: test/sanitize/deepbind_off.c
	@mkdir -p $(@D)
	$(CLANG) $(REL_TEST_CFLAGS) -c $< -o $@

$(MEMCHECK_DIR)/%: $(call lib_objs,$(SAN_DIR)/obj) $(MEMCHECK_DIR)/deepbind_off.o $(TEST_C_HDRS) include/jaclip.h
	$(CLANG) $(REL_TEST_CFLAGS) $(ASAN_TORCH_FLAGS) -c $(filter %.c,$^) -o $@.o
	$(CLANGXX) $(ASAN_TORCH_FLAGS) $(REL_WRAP) -o $@ $@.o $(filter %.o,$^) $(LIB_LDLIBS)
$(MEMCHECK_DIR)/test_core: test/c/test_core.c
$(MEMCHECK_DIR)/valgrind_loop: test/sanitize/valgrind_loop.c
$(MEMCHECK_DIR)/leak_canary: test/sanitize/leak_canary.c

# ---- the probe: can valgrind load the torch plugin here? ----------------------------------------------
$(BUILD)/test/load_plugin: test/sanitize/load_plugin.c | $(BUILD)/test/.dir
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -o $@ $< -ldl
# The answer is kept per CPU (model name and flags) and plugin: a build folder moved to another CPU asks again.
MEMCHECK_CPU := $(shell grep -m2 -E '^(model name|flags)' /proc/cpuinfo 2>/dev/null | md5sum | cut -c1-12)
MEMCHECK_PROBE := $(MEMCHECK_DIR)/probe-$(MEMCHECK_CPU).txt
$(MEMCHECK_PROBE): $(BUILD)/test/load_plugin $(PLUGIN) tools/valgrind-probe
	@mkdir -p $(@D) && rm -f $(MEMCHECK_DIR)/probe-*.txt
	@PROBE_NAME="a process that loads the torch plugin" tools/valgrind-probe $(BUILD)/test/load_plugin $(abspath $(PLUGIN)) > $@.tmp; rc=$$?; \
	  if [ $$rc -gt 1 ]; then cat $@.tmp; rm -f $@.tmp; exit 1; fi; echo $$rc >> $@.tmp && mv $@.tmp $@

# $(call memcheck,STEP,PROGRAM,VALGRIND_ARGS): PROGRAM (a name in $(BUILD)/test and $(MEMCHECK_DIR)) under
# valgrind when the probe said it can run the plugin, else the probe's line and the ASan + LSan build.
define memcheck
	@if [ "$$(tail -n 1 $(MEMCHECK_PROBE))" = 0 ]; then \
	  echo "$(TEST_ENV) $(VALGRIND) $(3) $(BUILD)/test/$(2)"; \
	  $(TEST_ENV) $(VALGRIND) $(3) $(BUILD)/test/$(2); \
	else \
	  echo "$(1): $$(head -n 1 $(MEMCHECK_PROBE))"; \
	  echo "$(1): $(2) runs under ASan + LSan + UBSan instead ($(MEMCHECK_DIR)/$(2), instrumented torch plugin)"; \
	  $(TEST_ENV) $(ASAN_TORCH_ENV) $(MEMCHECK_DIR)/$(2); \
	fi
endef

.PHONY: test-valgrind-core test-valgrind-loop test-asan-torch
test-valgrind-core: $(BUILD)/test/test_core $(MEMCHECK_PROBE) $(MEMCHECK_DIR)/test_core $(ASAN_TORCH_PLUGIN) test-models
	$(call memcheck,$@,test_core,)

test-valgrind-loop: $(BUILD)/test/valgrind_loop $(MEMCHECK_PROBE) $(MEMCHECK_DIR)/valgrind_loop $(ASAN_TORCH_PLUGIN) test-models
	$(call memcheck,$@,valgrind_loop,--show-leak-kinds=definite)

# The canary first: a fallback that could not see a leak through the plugin would pass anything.
test-asan-torch: $(ASAN_TORCH_BINS) $(ASAN_TORCH_PLUGIN) test-models
	@$(TEST_ENV) $(ASAN_TORCH_ENV) $(MEMCHECK_DIR)/leak_canary || { echo "leak_canary fails with nothing leaked"; exit 1; }
	@$(TEST_ENV) $(ASAN_TORCH_ENV) JACLIP_CANARY=leak $(MEMCHECK_DIR)/leak_canary > $(MEMCHECK_DIR)/canary.log 2>&1; \
	  rc=$$?; if [ $$rc -ne 0 ] && grep -q 'ERROR: LeakSanitizer' $(MEMCHECK_DIR)/canary.log && \
	    grep -q 'jaclip_model_load' $(MEMCHECK_DIR)/canary.log && grep -q 'jaclip_model_encode_texts' $(MEMCHECK_DIR)/canary.log; \
	  then echo "leak canary: LSan reports the lost model and tensor (rc $$rc)"; \
	  else cat $(MEMCHECK_DIR)/canary.log; echo "leak canary: LSan did not report the lost model and tensor"; exit 1; fi
	$(TEST_ENV) $(ASAN_TORCH_ENV) $(MEMCHECK_DIR)/test_core
	$(TEST_ENV) $(ASAN_TORCH_ENV) $(MEMCHECK_DIR)/valgrind_loop

TEST_STEPS += test-asan-torch
