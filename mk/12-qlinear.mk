# test-qlinear: lib/qlinear (the int8-weight Linear kernels of the torch plugin) against the naive
# reference of test/qlinear/test_qlinear.c, run as the CPU dispatches and again forced to the portable
# code (JACLIP_Q8_PORTABLE=1), under ASan + UBSan: the kernels need no libtorch, so they are built here
# from source with the test, not reached through the plugin.
QLINEAR_TEST := $(BUILD)/test/test_qlinear
$(QLINEAR_TEST): test/qlinear/test_qlinear.c $(QLINEAR_SRCS) lib/qlinear/qlinear.h | $(BUILD)/test/.dir
	$(CLANG) -std=c11 $(SAN_COMMON) -O2 -fsanitize=address,undefined -fno-sanitize-recover=undefined \
		-o $@ test/qlinear/test_qlinear.c $(QLINEAR_SRCS) -lm

.PHONY: test-qlinear
test-qlinear: $(QLINEAR_TEST)
	$(QLINEAR_TEST)
	JACLIP_Q8_PORTABLE=1 $(QLINEAR_TEST)

TEST_STEPS += test-qlinear
