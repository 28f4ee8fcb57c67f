# snapfleet — the two commands a newcomer needs are `make demo` and `make test`.
GO      ?= go
BIN     := bin/snapfleet
PKGS    := ./...
export CGO_ENABLED := 0

.PHONY: all build test lint demo bench moto chromium tools shellcheck clean lambda deploy-check

all: build

build:
	$(GO) build -o $(BIN) ./cmd/snapfleet

# moto: check that python3 can start moto_server (with its clock wrapper); install it when
# missing and a package index is reachable, else fail with the reason.
moto:
	@scripts/ensure-moto.sh

# chromium: the headless browser the HTML report's rendering test drives; installed from
# Debian's packages when missing.
chromium:
	@scripts/ensure-chromium.sh

# tools: shellcheck and the filesystem tools of the hook scripts' test (e2fsprogs,
# util-linux), installed from Debian packages when missing.
tools:
	@scripts/ensure-tools.sh

# shellcheck: the default hook scripts shipped in the binary, and the repo's scripts.
shellcheck: tools
	shellcheck worker/hooks/*.sh scripts/*.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# lambda: the `bootstrap` of the provided.al2023 runtime for arm64 and amd64, static (CGO
# off) without the legacy RPC mode, zipped for upload when zip exists; then checked.
LAMBDA_DIR := bin/lambda
lambda:
	@for arch in arm64 amd64; do \
	  mkdir -p $(LAMBDA_DIR)/$$arch && \
	  GOOS=linux GOARCH=$$arch $(GO) build -trimpath -tags lambda.norpc -ldflags '-s -w' \
	    -o $(LAMBDA_DIR)/$$arch/bootstrap ./cmd/snapfleet || exit 1; \
	  if command -v zip >/dev/null 2>&1; then \
	    rm -f $(LAMBDA_DIR)/$$arch/snapfleet.zip && (cd $(LAMBDA_DIR)/$$arch && zip -q snapfleet.zip bootstrap) || exit 1; \
	  fi; \
	done
	@scripts/deploy-check.sh lambda $(LAMBDA_DIR)

# deploy-check: cfn-lint on every template, kubeconform on the manifests (schemas in
# deploy/k8s/schemas), the Dockerfile rules, and the Lambda binaries (deploy/README.md).
deploy-check: lambda
	@scripts/deploy-check.sh

# test: every test. Each test that needs AWS starts its own moto_server on a free
# loopback port and stops it by PID (internal/testbed/mototest), so tests run in parallel.
# They mostly wait (on moto, on queue timeouts), not compute: -parallel lets 6 run at once
# in a package instead of go test's default of one per core (2 here), which halves the
# end-to-end package's wall time.
TEST_PARALLEL ?= 6
test: moto chromium lint shellcheck deploy-check
	$(GO) test -count=1 -parallel $(TEST_PARALLEL) -timeout 9m $(PKGS)

# demo: a local moto fleet, `run` on the embedded queue, `plan` + two `work` on SQS,
# then a month later a plan that prunes; prints the JSON summaries.
demo: moto build
	@scripts/demo.sh

# bench: the planner's in-process benchmarks, then the fleet benchmark: real `snapfleet plan`
# and `work` processes against moto behind the limits-faithful endpoint (internal/testbed/awslimits).
# Figures and their definitions: BENCHMARKS.md. BENCH_FLAGS, e.g. -scale 1 for the issue's sizes.
bench: moto
	$(GO) test -run '^$$' -bench . -benchtime 1x -benchmem ./planner/
	$(GO) run ./bench $(BENCH_FLAGS)

clean:
	rm -rf bin .demo
