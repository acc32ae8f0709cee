# Debian packages (debian/, docs/debian.md): libjaclip1, libjaclip-dev, jaclip, python3-jaclip,
# ruby-jaclip.
#   deb              dpkg-buildpackage -us -uc -b on a copy of the tree (tracked and untracked, not
#                    ignored files: what a clean clone has, plus your edits) in build/deb/src; the
#                    packages, .changes and lintian's report land in build/deb/
#   test-deb         not in make test (downloads Debian packages; 6 to 10 min, docs/debian.md):
#                    installs the packages into a clean debootstrap bookworm root cached under
#                    build/deb-root and there, with nothing of the source tree, builds and runs
#                    examples/classify.c with pkg-config, imports both bindings, runs jaclip classify
#                    and man jaclip (tools/deb-test-root)
#   check-deb-version  (make test) debian/changelog, include/jaclip.h and CHANGELOG.md agree
DEB_DIR := $(BUILD)/deb
DEB_MIRROR ?= $(shell sed -n 's/^URIs: *\(http[^ ]*debian\)$$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)

.PHONY: deb test-deb check-deb-version
deb:
	debian/check-version
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src
	git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C $(DEB_DIR)/src
	cd $(DEB_DIR)/src && dpkg-buildpackage -us -uc -b -j2 > ../build.log 2>&1 || { tail -40 ../build.log; exit 1; }
	rm -rf $(DEB_DIR)/src
	lintian --fail-on error --info $(DEB_DIR)/*.changes 2>&1 | tee $(DEB_DIR)/lintian.txt
	@ls -l $(DEB_DIR)/*.deb

test-deb: $(TINY_MODEL)
	@test -n "$$(ls $(DEB_DIR)/*.deb 2>/dev/null)" || $(MAKE) --no-print-directory deb
	tools/deb-test-root $(DEB_DIR) $(BUILD)/deb-root $(TINY_MODEL) data/dog.jpeg '$(DEB_MIRROR)'

check-deb-version:
	debian/check-version

TEST_STEPS += check-deb-version
