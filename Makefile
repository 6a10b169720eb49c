# cvirt build: `make` -> build/cvirt; `make test` runs every test layer.
CC      ?= cc
PKGS    := jansson libcurl sqlite3 libsodium libpq openssl
CFLAGS  ?= -O2 -g
WERROR  ?= -Werror
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra $(WERROR) -Wshadow -Wno-unused-parameter \
           -Isrc $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lcivetweb -lpthread -lm
SAN     ?= 0
ifeq ($(SAN),1)
BUILD   ?= build-san
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
BUILD   ?= build
endif

SRCS    := $(sort $(wildcard src/*.c src/*/*.c))
OBJS    := $(SRCS:%.c=$(BUILD)/%.o)
LIBOBJS := $(filter-out $(BUILD)/src/main.o,$(OBJS))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
# Shared test helpers (e.g. the fake QMP server), linked into every test.
UNIT_HELPERS := $(filter-out $(UNIT_SRCS),$(sort $(wildcard tests/unit/*.c)))

all: $(BUILD)/cvirt web

$(BUILD)/cvirt: $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(UNIT_HELPERS) $(wildcard tests/unit/*.h) $(LIBOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -Itests/unit -o $@ $< $(UNIT_HELPERS) $(LIBOBJS) $(LDLIBS) -lcmocka

unit: $(UNIT_BINS)

# The web UI: web/ plus browser libraries vendored from npm (scripts/build-web).
WEB_SRCS := $(shell find web -type f 2>/dev/null)
web: $(BUILD)/web/index.html

$(BUILD)/web/index.html: $(WEB_SRCS) package-lock.json scripts/build-web
	scripts/build-web $(BUILD)/web

# The README's test command: installs dependencies, builds, runs every layer.
test check:
	tests/run

deps:
	scripts/install-deps

clean:
	rm -rf build build-san

.PHONY: all unit web test check deps clean
-include $(OBJS:.o=.d)
