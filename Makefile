# snapfleet — the two commands a newcomer needs are `make demo` and `make test`.
GO      ?= go
BIN     := bin/snapfleet
PKGS    := ./...
export CGO_ENABLED := 0

.PHONY: all build test lint demo bench moto clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/snapfleet

# moto: check that python3 can start moto_server (with its clock wrapper); install it when
# missing and a package index is reachable, else fail with the reason.
moto:
	@scripts/ensure-moto.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# test: every test. Each test that needs AWS starts its own moto_server on a free
# loopback port and stops it by PID (internal/mototest), so tests run in parallel.
test: moto lint
	$(GO) test -count=1 -timeout 9m $(PKGS)

# demo: a local moto fleet, `run` on the embedded queue, `plan` + two `work` on SQS,
# then a month later a plan that prunes; prints the JSON summaries.
demo: moto build
	@scripts/demo.sh

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./planner/

clean:
	rm -rf bin .demo
