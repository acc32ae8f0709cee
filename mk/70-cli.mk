# The `jaclip` command (tools/jaclip/, one file per command; `serve` is a folder of its own, mk/75-serve.mk). test/c/test_index.c and
# test/python/test_cli.py run in test-c and test-python; nothing else is added to TEST_STEPS.

CLI := $(BUILD)/jaclip
CLI_INSTALLED := $(BUILD)/obj/jaclip-installed
# Where the installed command finds jaclip-convert (installed beside its Python package).
CONVERT_DIR := $(LIBDIR)/jaclip

all: $(CLI)
install: $(CLI_INSTALLED)
test-python test-python-order: $(CLI)

JACLIP_CLI_CFLAGS = -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -Iinclude \
	-DJACLIP_CONVERT_INSTALLED='"$(CONVERT_DIR)/jaclip-convert"' -DJACLIP_DEFAULT_PYTHON='"$(PYTHON)"'

# In the build tree the command finds the library beside itself...
# Fragments append the libraries their commands need to CLI_LDLIBS, and a command kept in a folder of
# its own (tools/jaclip/serve/) appends its sources to CLI_SRCS and names them as prerequisites.
CLI_SRCS := $(sort $(wildcard tools/jaclip/*.c))
CLI_DEPS := $(CLI_SRCS) $(wildcard tools/jaclip/*.h) include/jaclip.h $(SHLIB) $(BUILD)/libjaclip.so

$(CLI): $(CLI_DEPS)
	$(CC) $(JACLIP_CLI_CFLAGS) -o $@ $(CLI_SRCS) -L$(BUILD) -ljaclip -Wl,-rpath,'$$ORIGIN' -lm $(CLI_LDLIBS)

# ...and installed, in $(LIBDIR) only: through an rpath unless the dynamic linker searches it anyway
# (Debian's packages: /usr/lib/<multiarch>, where lintian refuses an rpath).
$(CLI_INSTALLED): $(CLI_DEPS) $(PREFIX_STAMP) $(MAN_PAGE)
	$(CC) $(JACLIP_CLI_CFLAGS) -o $@ $(CLI_SRCS) -L$(BUILD) -ljaclip \
		$(if $(filter $(LIBDIR),$(LINKER_DEFAULT_LIBDIRS)),,-Wl,-rpath,$(LIBDIR)) -lm $(CLI_LDLIBS)

INSTALL_EXTRA += install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(CONVERT_DIR)/jaclip_convert && \
	install -m 755 $(CLI_INSTALLED) $(DESTDIR)$(BINDIR)/jaclip && \
	install -m 644 $(MAN_PAGE) $(DESTDIR)$(PREFIX)/share/man/man1/jaclip.1 && \
	install -m 755 tools/jaclip-convert $(DESTDIR)$(CONVERT_DIR)/jaclip-convert && \
	install -m 644 tools/jaclip_convert/*.py $(DESTDIR)$(CONVERT_DIR)/jaclip_convert/;

.PHONY: uninstall-cli
uninstall: uninstall-cli
uninstall-cli:
	rm -f $(DESTDIR)$(BINDIR)/jaclip $(DESTDIR)$(PREFIX)/share/man/man1/jaclip.1
	rm -rf $(DESTDIR)$(CONVERT_DIR)
