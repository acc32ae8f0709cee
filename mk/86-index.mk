# Index test programs (lib/index/), each run under a 4 GB address-space limit and a 120 s timeout, so a
# regression fails instead of swapping or hanging:
#   test-index-files   format version 2: deletion, tombstones, compaction, stamps, fingerprint, float16
#                      rows, version 1 files, and the issue-13 classes (test/index/test_index_files.c)
#   test-index-meta    metadata, format version 3 (issue 25)
#   test-index-filter  filter-then-rank search options against brute force (issue 25)
#   test-index-times   capture times: EXIF DateTimeOriginal, hostile EXIF, per-row times in format
#                      version 4 (issue 25)
# $(eval $(call index_test,NAME)): build/test/test_index_NAME from test/index/test_index_NAME.c, and
# the step test-index-NAME.
define index_test
$(BUILD)/test/test_index_$(1): test/index/test_index_$(1).c test/c/check.h include/jaclip.h $(SHLIB) | $(BUILD)/test/.dir
	$$(CC) -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Iinclude -Itest/c -o $$@ $$< -L$(BUILD) -ljaclip \
		-Wl,-rpath,$(abspath $(BUILD)) -lz -lm -lpthread

.PHONY: test-index-$(1)
test-index-$(1): lib $(BUILD)/test/test_index_$(1)
	$$(TEST_ENV) prlimit --as=4294967296 timeout 120 $(BUILD)/test/test_index_$(1)

TEST_STEPS += test-index-$(1)
endef
$(foreach t,files meta filter times,$(eval $(call index_test,$(t))))

# jaclip index sync hashes file contents with OpenSSL's SHA-256.
CLI_LDLIBS += -lcrypto

# Filter-then-rank against the plain exact search, 100 000 and 1 000 000 rows (about 5 GB at 1 M).
# Not part of make test.
.PHONY: bench-filters
bench-filters: lib
	JACLIP_LIBRARY=$(abspath $(SHLIB)) $(PYTHON) bench/bench_filters.py --rows 100000 --queries 20
	JACLIP_LIBRARY=$(abspath $(SHLIB)) $(PYTHON) bench/bench_filters.py --rows 1000000 --queries 5

# float32 against float16 rows on clustered 512-d vectors, 100 000 and 1 000 000 rows (about 7 GB of
# memory at 1 M). Not part of make test.
.PHONY: bench-index-storage
bench-index-storage: lib
	$(PYTHON) bench/bench_index.py --storage --rows 100000 --queries 50
	$(PYTHON) bench/bench_index.py --storage --rows 1000000 --queries 20
