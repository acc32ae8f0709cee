# C tests: test/c/test_*.c, each built against the shared library and run with
#   JACLIP_TEST_MODEL=<tiny model> JACLIP_TEST_MODEL_BF16=... JACLIP_SHARED_DATA=<../shared/data>
#   JACLIP_PROJECT_DATA=data
BAD_MODELS := $(TEST_MODEL_DIR)/bad

$(BAD_MODELS)/.done: $(TINY_MODEL) test/tools/make_bad_models.py
	$(PYTHON) test/tools/make_bad_models.py $(TINY_MODEL) $(BAD_MODELS) && touch $@

test-models: $(BAD_MODELS)/.done

TEST_C_HDRS := $(wildcard test/c/*.h)
TEST_C_SRCS := $(sort $(wildcard test/c/test_*.c))
TEST_C_BINS := $(TEST_C_SRCS:test/c/%.c=$(BUILD)/test/%)
TEST_ENV := JACLIP_BAD_MODELS=$(BAD_MODELS) JACLIP_TEST_MODEL=$(TINY_MODEL) JACLIP_TEST_MODEL_BF16=$(TINY_MODEL_BF16) JACLIP_TEST_MODEL_INT8=$(TINY_MODEL_INT8) \
	JACLIP_TEST_CHECKPOINT=$(TINY_CKPT) JACLIP_SHARED_DATA=$(SHARED_DATA) JACLIP_PROJECT_DATA=data \
	JACLIP_LIBRARY=$(abspath $(BUILD)/libjaclip.so) PYTHON=$(PYTHON)

$(BUILD)/test/%: test/c/%.c $(TEST_C_HDRS) include/jaclip.h $(SHLIB) | $(BUILD)/test/.dir
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Iinclude -o $@ $< -L$(BUILD) -ljaclip \
		-Wl,-rpath,$(abspath $(BUILD)) -lm -lpthread

$(BUILD)/test/.dir:
	mkdir -p $(BUILD)/test && touch $@

.PHONY: test-c test-python
test-c: lib test-models $(TEST_C_BINS)
	@failed=0; for t in $(TEST_C_BINS); do \
	  $(TEST_ENV) $$t || { echo "FAILED: $$t"; failed=1; }; done; test $$failed -eq 0

# pytest over test/python (parity against the Debian reference stacks, tools, bindings).
test-python: lib test-models $(BUILD)/examples/classify
	$(TEST_ENV) $(PYTHON) -m pytest -q -rs test/python

# The model tests again, files in reverse order, after a num_threads=1 model resized OpenBLAS's pool
# in the pytest process: every cross-process comparison must hold under other thread settings
# (docs/determinism.md).
PY_ORDER_FILES := test_precision.py test_cli.py test_binding_index.py test_binding_python.py test_model_parity.py
.PHONY: test-python-order
test-python-order: lib test-models
	$(TEST_ENV) JACLIP_TEST_ONE_THREAD_FIRST=1 $(PYTHON) -m pytest -q -rs -p no:cacheprovider \
		$(addprefix test/python/,$(PY_ORDER_FILES))

TEST_STEPS += test-c test-python test-python-order

# load / encode / free under memcheck: no definite leak, no invalid access (test/valgrind.supp lists
# the glibc loader's known false positives).
VALGRIND := valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
	--suppressions=test/valgrind.supp
# test-valgrind-core's rule is in mk/81-memcheck.mk (valgrind where it can load libtorch, else ASan).
TEST_STEPS += test-valgrind-core
