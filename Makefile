# pod-runner — see README.md. Tools are pinned here and run with `go run`.
GO          ?= go
BIN         := bin
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BUF         := github.com/bufbuild/buf/cmd/buf@v1.75.0
EXAMPLE     ?= examples/build-and-test.yaml

.PHONY: all build deps test unit e2e lint bench run proto clean

all: build

## build: the pod-runner and injector binaries, into bin/
build:
	$(GO) build -o $(BIN)/pod-runner ./cmd/pod-runner

## run: run the bundled example PipelineRun on this machine
run: build
	$(BIN)/pod-runner run -f $(EXAMPLE)

## deps: what the tests need on this machine: busybox (sh and ash of the
## busybox and alpine images Tekton's examples use)
deps:
	@command -v busybox >/dev/null || { apt-get update -q && apt-get install -y -q busybox-static; }

## test: lint, then unit, integration and conformance tests with the race detector
test: deps lint unit e2e

unit:
	$(GO) test -race ./internal/... ./proto/... ./cmd/...

# The end-to-end tests run the built binary, which Go's test cache cannot
# see: always run them.
e2e:
	$(GO) test -race -count=1 ./test/...

## lint: gofmt, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## bench: the engine's overhead against a shell script running the same commands
bench:
	$(GO) test -run '^$$' -bench . -benchtime 5x ./test/bench/

## proto: regenerate proto/planpb from proto/plan.proto
proto:
	$(GO) run $(BUF) generate

clean:
	rm -rf $(BIN)
