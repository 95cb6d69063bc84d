# cmf — build, run and test. `make run` and `make test` are the two set-up commands (README.md).
CC      ?= cc
PKGS    := libmicrohttpd gnutls jansson yaml-0.1 libpq libcrypto libcurl
WARN    := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wimplicit-fallthrough -Wvla
STD     := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
HARDEN  := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
CFLAGS  ?= -O2 -g
ALL_CFLAGS = $(STD) $(WARN) $(HARDEN) $(CFLAGS) -I. $(shell pkg-config --cflags $(PKGS))
LDFLAGS_H := -pie -Wl,-z,relro,-z,now
LIBS    = $(shell pkg-config --libs $(PKGS)) -lpthread
CHECK_CFLAGS = $(shell pkg-config --cflags check)
CHECK_LIBS   = $(shell pkg-config --libs check)

SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1 -g

# Library sources: everything but the CLI entry point.
LIB_SRCS := $(sort $(wildcard cmf/*.c cmf/*/*.c db/*.c crypto/*.c k8s/*.c))
LIB_SRCS := $(filter-out cmf/cli/main.c,$(LIB_SRCS))
MIGRATIONS := $(sort $(wildcard db/migrations/*.sql))
GEN_SRCS := build/gen/migrations.c
UNIT_SRCS := $(sort $(shell find tests/unit -name 'test_*.c'))
UNIT_BINS := $(patsubst tests/unit/%.c,build/unit/%,$(UNIT_SRCS))
SAN_BINS  := $(patsubst tests/unit/%.c,build/san/%,$(UNIT_SRCS))
HEADERS := $(wildcard cmf/*.h cmf/*/*.h db/*.h crypto/*.h k8s/*.h tests/unit/*.h tests/fuzz/*.h)

.PHONY: all run test unit unit-san api deps clean bench bench-rotate fuzz fuzz-replay clang-check include-check image image-test

all: build/cmf

build/gen/migrations.c: $(MIGRATIONS) db/embed.sh
	@mkdir -p $(dir $@)
	sh db/embed.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

build/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

build/obj/gen/migrations.o: build/gen/migrations.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

LIB_OBJS := $(patsubst %.c,build/obj/%.o,$(LIB_SRCS)) build/obj/gen/migrations.o

build/cmf: build/obj/cmf/cli/main.o $(LIB_OBJS)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS_H) -o $@ $^ $(LIBS)

# A unit test names the sources it links on a line `// links: crypto/*.c cmf/log.c` (a line comment:
# `/*` inside a block comment trips -Wcomment), and may
# #include the .c it tests (to reach static functions); that file is then not linked a second time.
build/unit/%: tests/unit/%.c $(LIB_SRCS) $(GEN_SRCS) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) $(LDFLAGS_H) -o $@ $< $(call unit_deps,$<) $(LIBS) $(CHECK_LIBS)

build/san/%: tests/unit/%.c $(LIB_SRCS) $(GEN_SRCS) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(STD) $(WARN) -I. $(shell pkg-config --cflags $(PKGS)) $(CHECK_CFLAGS) $(SAN_FLAGS) \
	  -o $@ $< $(call unit_deps,$<) $(LIBS) $(CHECK_LIBS)

unit_deps = $(filter-out $(shell sed -n 's/^#include "\(.*\.c\)"/\1/p' $(1)),\
  $(wildcard $(shell sed -n -e 's|^// links: \(.*\)$$|\1|p' -e 's|^/\* links: \(.*\) \*/|\1|p' $(1))))

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; CK_FORK=yes $$t; done

unit-san: $(SAN_BINS)
	@set -e; for t in $(SAN_BINS); do echo "== $$t (ASan+UBSan)"; \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  CK_FORK=no $$t; done

deps:
	@sh tests/deps.sh

# The tree must also be warning-free under clang (the default build is gcc): a syntax-only pass.
clang-check: $(GEN_SRCS)
	@for f in cmf/cli/main.c $(LIB_SRCS) $(GEN_SRCS) $(UNIT_SRCS) $(FUZZ_SRCS); do \
	  clang $(STD) $(WARN) -I. $(shell pkg-config --cflags $(PKGS) check) -fsyntax-only $$f || exit 1; done
	@echo "clang-check: clean" 

# Include cycles among the modules of cmf/, db/, crypto/ and k8s/ (X.c with X.h); not in `make test` yet.
include-check:
	@python3 tests/check_includes.py

test: deps
	@$(MAKE) --no-print-directory include-check all clang-check unit unit-san fuzz-replay
	@sh tests/run-api.sh
	@$(MAKE) --no-print-directory image-test

# The container image, cmf:<the chart's appVersion> (IMAGE=... for another name), built with podman from
# the unchanged Dockerfile in the project's own store, .cache/podman, on Debian base images made from
# Debian's packages (mmdebstrap) when missing: tests/image/build.sh. Where a registry is reachable,
# `docker build -t cmf:0.1.0 .` builds the same Dockerfile on the real Debian images.
IMAGE ?= cmf:$(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$$/\1/p' helm/cmf/Chart.yaml)

image: deps
	@sh tests/image/build.sh '$(IMAGE)'

# The image run by podman in the pod shape `helm template` renders, against a throwaway PostgreSQL.
image-test: image
	@CMF_IMAGE='$(IMAGE)' /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/image

# cmf for development on 127.0.0.1:PORT (default 8080) with a throwaway PostgreSQL: make run [PORT=8081].
run: deps
	@$(MAKE) --no-print-directory all
	@PORT='$(PORT)' sh tests/run-dev.sh

# The hot paths against nginx, pgbench and audit-ingest anchors, with issue 11's targets (not part of `make test`).
bench: deps
	@$(MAKE) --no-print-directory all
	@sh tests/bench.sh

# The rewrap of 100,000 secrets to a new data key, and the resolution's throughput while it runs (issue 14).
bench-rotate: deps
	@$(MAKE) --no-print-directory all
	@sh tests/bench-rotate.sh

clean:
	rm -rf build

# libFuzzer harnesses: tests/fuzz/fuzz_NAME.c (with a `/* links: ... */` line), seed corpus in
# tests/fuzz/corpus/NAME/. `make test` replays every corpus under ASan+UBSan through replay_main.c
# (no libFuzzer runtime needed); `make fuzz` builds real libFuzzer binaries with clang.
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_REPLAY := $(patsubst tests/fuzz/%.c,build/fuzz-replay/%,$(FUZZ_SRCS))

build/fuzz-replay/%: tests/fuzz/%.c tests/fuzz/replay_main.c $(LIB_SRCS) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(STD) $(WARN) -I. $(shell pkg-config --cflags $(PKGS)) $(SAN_FLAGS) \
	  -Wl,--as-needed -o $@ $< tests/fuzz/replay_main.c $(call unit_deps,$<) $(LIBS)

fuzz-replay: $(FUZZ_REPLAY)
	@set -e; for t in $(FUZZ_REPLAY); do n=$${t#build/fuzz-replay/fuzz_}; \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $$t tests/fuzz/corpus/$$n/*; done
	@# The router is a pure table matcher: its harness must not pull in the daemon's libraries.
	@! ldd build/fuzz-replay/fuzz_router | grep -E 'libmicrohttpd|libgnutls' || \
	  { echo 'fuzz_router links libmicrohttpd or GnuTLS' >&2; exit 1; }

fuzz: $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRCS))

build/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) $(HEADERS)
	@mkdir -p $(dir $@)
	clang $(STD) -I. $(shell pkg-config --cflags $(PKGS)) -g -O1 -fsanitize=fuzzer,address,undefined \
	  -o $@ $< $(call unit_deps,$<) $(LIBS)
