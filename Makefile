# cvirt build: `make` -> build/cvirt; `make test` runs every test layer.
CC      ?= cc
PKGS    := jansson sqlite3 libsodium openssl libbpf
# Headers only: libpq is loaded on first use (src/manager/db_pqload.c).
DLPKGS  := libpq
CFLAGS  ?= -O2 -g
WERROR  ?= -Werror
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra $(WERROR) -Wshadow -Wno-unused-parameter \
           -Isrc $(shell pkg-config --cflags $(PKGS) $(DLPKGS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lcivetweb -lhttp_parser -lpthread -lm
# SAN=1: ASan + UBSan, every report fatal, in build-san/ (the unit tests,
# and the daemons and CLI of the integration and browser suites: tests/run).
# Built with clang, whose ASan and UBSan share one runtime: UBSan's reports
# then honour UBSAN_OPTIONS=log_path too (GCC's separate libubsan writes
# them to stderr whatever it says, where a CLI's stderr hides them).
SAN     ?= 0
ifeq ($(SAN),1)
BUILD   ?= build-san
SAN_CC  ?= clang
CC      := $(SAN_CC)
CFLAGS  += -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
           -fno-omit-frame-pointer -fno-optimize-sibling-calls
LDFLAGS += -fsanitize=address,undefined
else
BUILD   ?= build
endif

# *.bpf.c are eBPF programs (below), not part of the host code.
SRCS    := $(filter-out %.bpf.c,$(sort $(wildcard src/*.c src/*/*.c)))
OBJS    := $(SRCS:%.c=$(BUILD)/%.o)
LIBOBJS := $(filter-out $(BUILD)/src/main.o,$(OBJS))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
# Shared test helpers (e.g. the fake QMP server), linked into every test.
UNIT_HELPERS := $(filter-out $(UNIT_SRCS),$(sort $(wildcard tests/unit/*.c)))

all: $(BUILD)/cvirt web

$(BUILD)/cvirt: $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c $(BUILD)/cflags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(UNIT_HELPERS) $(wildcard tests/unit/*.h) $(LIBOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -Itests/unit -o $@ $< $(UNIT_HELPERS) $(LIBOBJS) $(LDLIBS) -lcmocka

unit: $(UNIT_BINS)

# The eBPF VLAN datapath (src/net/netbpf.bpf.c): clang -target bpf, then
# embedded in the binary by netbpf_obj.c (.incbin of the object file).
BPF_CC     ?= clang
BPF_CFLAGS := -O2 -g -target bpf -Wall -Werror -Isrc \
              -I/usr/include/$(shell $(BPF_CC) -print-multiarch 2>/dev/null)
define netbpf_rules
$(1)/src/net/netbpf.bpf.o: src/net/netbpf.bpf.c src/net/netbpf_prog.h
	@mkdir -p $$(dir $$@)
	$$(BPF_CC) $$(BPF_CFLAGS) -c -o $$@ $$<
$(1)/src/net/netbpf_obj.o: $(1)/src/net/netbpf.bpf.o
$(1)/src/net/netbpf_obj.o: $(2) += -DNETBPF_OBJ='"$(1)/src/net/netbpf.bpf.o"'
endef

# Everything is rebuilt when the compiler or its flags change (an old
# build-san/ was made by GCC: its objects do not link with clang's ASan).
$(BUILD)/cflags: FORCE
	@mkdir -p $(BUILD)
	@echo '$(CC) $(CFLAGS) $(LDFLAGS)' | cmp -s - $@ || \
		echo '$(CC) $(CFLAGS) $(LDFLAGS)' >$@
FORCE:

# The web UI: web/ plus browser libraries vendored from npm (scripts/build-web).
WEB_SRCS := $(shell find web -type f 2>/dev/null)
web: $(BUILD)/web/index.html

$(BUILD)/web/index.html: $(WEB_SRCS) package-lock.json scripts/build-web
	scripts/build-web $(BUILD)/web

# libFuzzer targets (clang): tests/fuzz/fuzz_*.c against every source file
# built with ASan/UBSan; `make fuzz` builds, tests/run runs each briefly.
FUZZ_CC     ?= clang
FUZZ_BUILD  := build-fuzz
FUZZ_CFLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -Isrc $(shell pkg-config --cflags $(PKGS) $(DLPKGS)) \
               -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
               -fno-sanitize-recover=all
FUZZ_SRCS   := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS   := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_OBJS   := $(filter-out $(FUZZ_BUILD)/src/main.o,$(SRCS:%.c=$(FUZZ_BUILD)/%.o))

# Objects depend on the Makefile: a change of FUZZ_CFLAGS rebuilds them.
$(FUZZ_BUILD)/src/%.o: src/%.c Makefile
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS) $(LDLIBS)

# fuzz_api stands in for the agents itself (its own agentc_* functions).
$(FUZZ_BUILD)/fuzz_api: tests/fuzz/fuzz_api.c $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
	    $(filter-out %/agentc.o,$(FUZZ_OBJS)) $(LDLIBS)

fuzz: $(FUZZ_BINS)

$(eval $(call netbpf_rules,$(BUILD),CFLAGS))
$(eval $(call netbpf_rules,$(FUZZ_BUILD),FUZZ_CFLAGS))

# `make install DESTDIR=... PREFIX=/usr`: the binary, systemd units, config
# files, bash completion, docs and (when built) the web UI.
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
install: $(BUILD)/cvirt
	install -D -m 0755 $(BUILD)/cvirt $(DESTDIR)$(PREFIX)/bin/cvirt
	for u in cvirt-manager cvirt-agent; do \
		sed 's|/usr/bin/cvirt|$(PREFIX)/bin/cvirt|; s|/etc/cvirt|$(SYSCONFDIR)/cvirt|' \
		    packaging/$$u.service >$(BUILD)/$$u.service && \
		install -D -m 0644 $(BUILD)/$$u.service \
		    $(DESTDIR)$(PREFIX)/lib/systemd/system/$$u.service || exit 1; \
	done
	install -D -m 0640 packaging/manager.conf $(DESTDIR)$(SYSCONFDIR)/cvirt/manager.conf
	install -D -m 0640 packaging/agent.conf $(DESTDIR)$(SYSCONFDIR)/cvirt/agent.conf
	install -D -m 0644 packaging/cvirt.bash-completion \
	    $(DESTDIR)$(PREFIX)/share/bash-completion/completions/cvirt
	for d in README.md docs/*.md; do \
		install -D -m 0644 $$d $(DESTDIR)$(PREFIX)/share/doc/cvirt/$$(basename $$d) || exit 1; \
	done
	if [ -f $(BUILD)/web/index.html ]; then \
		mkdir -p $(DESTDIR)$(PREFIX)/share/cvirt && \
		cp -R $(BUILD)/web $(DESTDIR)$(PREFIX)/share/cvirt/; \
	fi

# dist/cvirt_VERSION_ARCH.deb (scripts/build-deb).
deb:
	scripts/build-deb dist

# The README's test command: installs dependencies, builds, runs every layer.
test check:
	tests/run

# Every bench/bench_*.py -> bench/results.json and bench/results.md.
bench: $(BUILD)/cvirt
	bench/run

deps:
	scripts/install-deps

clean:
	rm -rf build build-san build-fuzz

.PHONY: all unit web fuzz test check deps clean install deb bench FORCE
-include $(OBJS:.o=.d)
-include $(FUZZ_OBJS:.o=.d)
