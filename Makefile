# sendconn — build, test and run.
#
#   make run            build bin/sendconn and run it (pass arguments with ARGS="…")
#   make test           every test that needs nothing but Go
#   make interop        the same flows against real peers (needs Debian packages; .ci/run installs them)
#   make reliability    try to lose mail: kill -9 under load, smart host outages,
#                       a full disk, a backlog (RELIABILITY_BACKLOG=100000 for the full one)
#   make lint           gofmt, go vet, staticcheck
#   make fuzz           a short run of every fuzz target (FUZZTIME=10s each)
#   make bench          Go benchmarks, then sendconn serve vs. a private Postfix on
#                       loopback (needs root and Postfix; flags in BENCHFLAGS="…")
#   make bench-smoke    one short run of the relay benchmark (what CI reports;
#                       no thresholds: the ratio is printed, not asserted)
#   make docs           regenerate docs/reference from the commands' help

GO       ?= go
BIN      := bin/sendconn
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
ARGS     ?= get
FUZZTIME ?= 10s
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build run test interop reliability lint fuzz bench bench-smoke docs clean

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/sendconn

run: build
	./$(BIN) $(ARGS)

# The race detector runs on the packages with concurrency; the CLI scripts
# re-execute the test binary hundreds of times, where it only costs time.
test:
	$(GO) test -race -count=1 ./pkg/...
	$(GO) test -count=1 ./cmd/...

# Needs smtp-sink and swaks on PATH; .ci/install-peers installs them.
interop:
	$(GO) test -tags interop -count=1 -run '^TestInterop' -v ./cmd/sendconn

# Real serve processes on loopback, bounded in time; the disk-full test
# mounts a small tmpfs and is skipped without root.
reliability:
	$(GO) test -tags reliability -count=1 -run '^TestReliability' -v -timeout 15m ./cmd/sendconn

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet -tags 'interop reliability' ./...
	$(GO) run $(STATICCHECK) -tags 'interop reliability' ./...

# Each target runs alone: go test -fuzz takes one target at a time.
fuzz:
	@set -e; for pkg in $$($(GO) list ./pkg/... ./cmd/sendconn/ems); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$target"; \
	    $(GO) test -run=NONE -fuzz="^$$target\$$" -fuzztime=$(FUZZTIME) $$pkg; \
	  done; \
	done

# The relay harness (cmd/sendconn/internal/relaybench) needs root, postfix,
# smtp-source and smtp-sink; -postfix=false measures sendconn alone. See
# BENCHFLAGS="-h" for its flags.
bench:
	$(GO) test -run=NONE -bench=. -benchmem ./pkg/...
	$(MAKE) --no-print-directory build
	$(GO) run ./cmd/sendconn/internal/relaybench -sendconn $(BIN) $(BENCHFLAGS)

# Postfix takes part when it can: as root, with Postfix installed.
SMOKE_POSTFIX = $(shell [ "$$(id -u)" = 0 ] && command -v postfix >/dev/null 2>&1 && echo true || echo false)

bench-smoke:
	$(MAKE) --no-print-directory build
	$(GO) run ./cmd/sendconn/internal/relaybench -sendconn $(BIN) -scenarios 4k,latency -runs 1 -n4k 1000 -samples 5 -postfix=$(SMOKE_POSTFIX)

docs:
	$(GO) run ./cmd/sendconn gen-docs docs/reference

clean:
	rm -rf bin
