# pod-runner — see README.md. Tools are pinned here and run with `go run`.
GO          ?= go
BIN         := bin
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BUF         := github.com/bufbuild/buf/cmd/buf@v1.75.0
EXAMPLE     ?= examples/build-and-test.yaml

.PHONY: all build deps test unit e2e lint bench run run-podman proto clean fuzz

all: build

## build: the pod-runner and injector binaries, into bin/
build:
	$(GO) build -o $(BIN)/pod-runner ./cmd/pod-runner
	$(GO) build -tags inpod,steponly -o $(BIN)/pod-runner-step ./cmd/pod-runner
	$(GO) build -o $(BIN)/injector ./cmd/injector

## run: run the bundled example PipelineRun on this machine
run: build
	$(BIN)/pod-runner run -f $(EXAMPLE)

## run-podman: the same example as one Pod under podman, each step in its image
run-podman: build images
	$(PODMAN_ENV) $(BIN)/pod-runner run --runtime podman -f $(EXAMPLE)

## deps: what the tests need on this machine: busybox (sh and ash of the
## busybox and alpine images Tekton's examples use) and git (Tekton's git
## resolver runs it)
deps:
	@command -v busybox >/dev/null || { apt-get update -q && apt-get install -y -q busybox-static; }
	@command -v git >/dev/null || { apt-get update -q && apt-get install -y -q git; }

## test: lint, then unit, integration, conformance, podman and cluster tests,
## then the faults that stop parts of the cluster
## with the race detector; ends with one line naming every skipped test and
## why (in CI a test that lacks what it needs fails instead: internal/testenv)
test: deps lint
	@rm -f $(TEST_OUT)/*.json
	@$(MAKE) --no-print-directory unit e2e $(FAULTS) SUMMARY=; status=$$?; \
	  $(GO) run ./hack/testsummary $$(ls $(TEST_OUT)/*.json 2>/dev/null); exit $$status

# Tests run under gotestsum (pinned), which prints one line per package and
# the output of what failed, and keeps go test's JSON events in
# $(TEST_OUT) for hack/testsummary's closing lines.
GOTESTSUM := $(GO) run gotest.tools/gotestsum@v1.13.0 --format pkgname --format-hide-empty-pkg
TEST_OUT  := $(CURDIR)/.cache/test
SUMMARY   ?= 1
summary    = $(if $(SUMMARY),; status=$$?; $(GO) run ./hack/testsummary $(TEST_OUT)/$(1).json; exit $$status)

## unit: the fast inner loop: the packages' own tests (no podman, no cluster)
unit:
	@mkdir -p $(TEST_OUT)
	$(GOTESTSUM) --jsonfile $(TEST_OUT)/unit.json -- -race ./api/... ./internal/... ./proto/... ./cmd/... ./hack/... $(call summary,unit)

# The end-to-end tests run the built binary, which Go's test cache cannot
# see: always run them. They include the podman ones and the ones on a real
# cluster (test/k8s, test/cluster): E2E_KUBECONFIG names that cluster, by
# default the local-k8s one, which `e2e` builds (once per machine), starts
# and loads with the images. For another cluster (Kind), load the images
# (make images; localhost/pod-runner:dev, localhost/busybox:pod-runner)
# into it yourself and set E2E_CLUSTER=external. The benchmarks
# (test/bench, test/clusterbench) assert nothing: make bench and make
# bench-cluster run them.
E2E_PKGS = $$($(GO) list ./test/... | grep -v -e /test/bench$$ -e /test/clusterbench$$)
e2e:
	@mkdir -p $(TEST_OUT)
	POD_RUNNER_CLUSTER=1 POD_RUNNER_K8S=1 POD_RUNNER_DEPLOYED=$(E2E_DEPLOYED) KUBECONFIG=$(E2E_KUBECONFIG) LOCAL_K8S=$(LOCAL_K8S) TKN=$(TKN) \
	  $(GOTESTSUM) --jsonfile $(TEST_OUT)/e2e.json -- -race -count=1 -timeout 40m -skip '^(TestDisrupt|TestTektonE2E$$|TestTektonExamples$$)' $(E2E_PKGS) $(call summary,e2e)

# Tekton's own e2e suite (the named tests, test/cluster/tektone2e_test.go)
# and its examples (test/cluster/examples_test.go) against pod-runner's
# controller, which then watches every namespace: alone, after e2e, on
# local-k8s only.
.PHONY: tekton-e2e
## tekton-e2e: the named tests of Tekton's e2e suite, then Tekton's examples,
## against pod-runner's controller
tekton-e2e: k8s-images k8s-image-debian
	@mkdir -p $(TEST_OUT)
	POD_RUNNER_CLUSTER=1 POD_RUNNER_TEKTON_E2E=1 LOCAL_K8S=$(LOCAL_K8S) KUBECONFIG=$(K8S_STATE)/kubeconfig/admin.kubeconfig \
	  $(GOTESTSUM) --jsonfile $(TEST_OUT)/tekton-e2e.json -- -race -count=1 -timeout 60m -parallel 4 -run '^(TestTektonE2E|TestTektonExamples)$$' ./test/cluster/ $(call summary,tekton-e2e)

# The faults that stop parts of the cluster itself (its API server, its
# kubelet, the whole node) would break the tests running beside them:
# `faults` runs them after e2e, one at a time, on local-k8s only.
.PHONY: faults
## faults: the API server and the kubelet restarted mid-run, and the whole
## node crashed and started again, with runs going (local-k8s only)
faults: k8s-images
	@mkdir -p $(TEST_OUT)
	POD_RUNNER_CLUSTER=1 LOCAL_K8S=$(LOCAL_K8S) K8S_STATE=$(K8S_STATE) KUBECONFIG=$(K8S_STATE)/kubeconfig/admin.kubeconfig \
	  $(GOTESTSUM) --jsonfile $(TEST_OUT)/faults.json -- -race -count=1 -timeout 20m -p 1 -run '^TestDisrupt' ./test/cluster/ $(call summary,faults)

## lint: gofmt, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## bench: the engine's overhead against a shell script running the same commands
bench:
	$(GO) test -run '^$$' -bench . -benchtime 5x ./test/bench/

## fuzz: each fuzz target for FUZZTIME (YAML → Plan, $(...) substitution,
## the status event decoder, the step wire protocol); prints the executions
## of each. A crasher is kept under the package's testdata/fuzz.
FUZZTIME ?= 60s
FUZZ_TARGETS := ./internal/compile:FuzzCompile ./internal/results:FuzzApply ./internal/sidecar:FuzzStream ./internal/stepper:FuzzReadMsg
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg > $(CURDIR)/.cache/fuzz-$$fn.log 2>&1; status=$$?; \
	  echo "$$fn: $$(grep -o 'execs: [0-9]*' $(CURDIR)/.cache/fuzz-$$fn.log | tail -1) in $(FUZZTIME), $$( [ $$status = 0 ] && echo 'no crash' || echo "FAILED (see .cache/fuzz-$$fn.log)")"; \
	  [ $$status = 0 ] || exit 1; \
	done

## proto: regenerate proto/planpb from proto/plan.proto
proto:
	$(GO) run $(BUF) generate

clean:
	rm -rf $(BIN)

# ---- Pod mode under podman (issue 3) ----------------------------------------
# podman runs with a private configuration and storage under .cache/podman,
# never the machine's: runc, cgroupfs, a file events log and lowered
# default rlimits, as the CI machines need (hack/podman/containers.conf.in).
PODMAN_DIR := $(CURDIR)/.cache/podman
PODMAN_ENV := CONTAINERS_CONF=$(PODMAN_DIR)/containers.conf \
              CONTAINERS_STORAGE_CONF=$(PODMAN_DIR)/storage.conf \
              CONTAINERS_REGISTRIES_CONF=$(CURDIR)/hack/podman/registries.conf
PODMAN      := $(PODMAN_ENV) podman
INPOD_BIN   := $(PODMAN_DIR)/pod-runner-inpod

.PHONY: podman-install podman-setup images image-busybox image-debian image-pod-runner podman-e2e podman-clean

## podman-install: Debian's podman and runc, when missing (CI starts fresh)
podman-install:
	@command -v podman >/dev/null && command -v runc >/dev/null || \
	  { apt-get update -q && apt-get install -y -q podman runc; }

## podman-setup: the private podman configuration under .cache/podman
podman-setup: podman-install $(PODMAN_DIR)/containers.conf $(PODMAN_DIR)/storage.conf

$(PODMAN_DIR)/%.conf: hack/podman/%.conf.in
	@mkdir -p $(PODMAN_DIR)/networks $(PODMAN_DIR)/events $(PODMAN_DIR)/tmp
	sed 's|@ROOT@|$(PODMAN_DIR)|g' $< >$@

## images: localhost/busybox:pod-runner and localhost/pod-runner:dev, built
## offline into the private storage; rebuilt only when their content changes
images: image-busybox image-pod-runner

image-busybox: podman-setup deps
	@$(PODMAN_ENV) images/busybox/build.sh

## image-debian: localhost/debian:pod-runner, the general image that stands in
## for the ubuntu, bash, python, node and git images of Tekton's examples (a
## minimal Debian from Debian's packages by mmdebstrap, ~300 MB, ~2 min cold)
image-debian: podman-setup
	@$(PODMAN_ENV) images/debian/build.sh

image-pod-runner: podman-setup
	CGO_ENABLED=0 $(GO) build -tags inpod -trimpath -o $(INPOD_BIN) ./cmd/pod-runner
	CGO_ENABLED=0 $(GO) build -tags inpod,steponly -trimpath -o $(INPOD_BIN)-step ./cmd/pod-runner
	@$(PODMAN_ENV) images/pod-runner/build.sh $(INPOD_BIN) $(INPOD_BIN)-step $$($(GO) run ./hack/podman/imagebinary)

# The e2e tests (./test/...) include the podman ones, which need the images,
# and the cluster ones (below), which run the Tekton CLI too.
e2e: images tkn

# ---- The Tekton CLI (issue 13) -----------------------------------------------
# tkn, pinned, for the tests that compare what it shows of a pod-runner run
# and of a Tekton run. Built once per clone (~6 min cold on 2 cores, seconds
# from a warm build cache).
TKN_VERSION := v0.43.0
TKN         := $(CURDIR)/.cache/tkn/tkn-$(TKN_VERSION)
.PHONY: tkn
## tkn: the Tekton CLI at TKN_VERSION (hack/tkn/build.sh)
tkn: $(TKN)
$(TKN):
	GO=$(GO) hack/tkn/build.sh $(TKN_VERSION) $@

## podman-e2e: only the podman end-to-end tests, verbose
podman-e2e: images
	$(GO) test -race -count=1 -v ./test/podman/

## podman-clean: remove every pod, container and volume of the private podman
podman-clean:
	-$(PODMAN) pod rm -af
	-$(PODMAN) rm -af
	-$(PODMAN) volume rm -af

# ---- Pod mode on a real Kubernetes (issue 3) ---------------------------------
# The local single-node cluster of ../shared/tools/local-k8s (not part of this
# repository): built once per machine (~6 min cold, nothing when built),
# started when not running (~4 s).
# The tool sits in ../shared beside this checkout; a clone elsewhere (CI's
# clean clone) finds the machine's copy in /work/shared.
LOCAL_K8S ?= $(firstword $(wildcard $(abspath $(CURDIR)/../shared/tools/local-k8s) /work/shared/tools/local-k8s) \
               $(abspath $(CURDIR)/../shared/tools/local-k8s))
K8S_STATE ?= $(HOME)/.cache/local-k8s
E2E_CLUSTER ?= local-k8s
ifeq ($(E2E_CLUSTER),local-k8s)
E2E_KUBECONFIG := $(K8S_STATE)/kubeconfig/admin.kubeconfig
E2E_DEPLOYED   := 1
FAULTS         := tekton-e2e faults
e2e: k8s-images k8s-controller-image
else
E2E_KUBECONFIG := $(KUBECONFIG)
endif

.PHONY: k8s-build k8s-up k8s-images k8s-image-debian k8s-e2e

## k8s-build: build the local cluster (apt packages, Kubernetes from the Go
## module proxy); skipped when built
k8s-build:
	@test -x $(LOCAL_K8S)/build.sh || { echo "no local-k8s at $(LOCAL_K8S) (set LOCAL_K8S, or E2E_CLUSTER=external)"; exit 1; }
	$(LOCAL_K8S)/build.sh

## k8s-up: start the local cluster (idempotent)
k8s-up: k8s-build
	$(LOCAL_K8S)/up.sh

# k8s-import: the named images of the private podman storage imported into
# the cluster's containerd; one that containerd has, as podman has it now
# (its ID noted at the last import), is left alone.
CTR = ctr -a $(K8S_STATE)/containerd/containerd.sock -n k8s.io
define k8s-import
	@mkdir -p $(PODMAN_DIR)/k8s
	@for img in $(1); do \
	  tar=$(PODMAN_DIR)/k8s/$$(echo $$img | tr '/:' '__').tar; \
	  id=$$($(PODMAN) image inspect --format '{{.Id}}' $$img) || exit 1; \
	  if [ "$$(cat $$tar.id 2>/dev/null)" = "$$id" ] && $(CTR) images ls -q | grep -qxF $$img; then continue; fi; \
	  echo "import $$img into the cluster"; \
	  rm -f $$tar && $(PODMAN) save --quiet --format docker-archive -o $$tar $$img && \
	  $(CTR) images import $$tar >/dev/null && rm -f $$tar && echo $$id >$$tar.id || exit 1; \
	done
endef

## k8s-images: the two local images, imported into the cluster's containerd
k8s-images: images k8s-up
	$(call k8s-import,localhost/busybox:pod-runner localhost/pod-runner:dev)

## k8s-image-debian: the Debian image Tekton's examples run in, imported
## into the cluster's containerd
k8s-image-debian: image-debian k8s-up
	$(call k8s-import,localhost/debian:pod-runner)

## k8s-e2e: create compiled run Pods on the local cluster
k8s-e2e: k8s-images
	POD_RUNNER_K8S=1 KUBECONFIG=$(K8S_STATE)/kubeconfig/admin.kubeconfig \
	  $(GO) test -count=1 -v ./test/k8s/

# ---- The controller on a real Kubernetes (issue 4) ---------------------------
.PHONY: cluster-e2e

## cluster-e2e: only `injector controller` on the host against the local
## cluster, with the pinned Tekton module's CRDs, verbose (make e2e runs it too)
cluster-e2e: k8s-images
	POD_RUNNER_CLUSTER=1 KUBECONFIG=$(K8S_STATE)/kubeconfig/admin.kubeconfig \
	  $(GO) test -count=1 -v ./test/cluster/

# ---- The controller deployed in the cluster (issue 4) -----------------------
# config/ is the kustomize deployment (config/default; config/local for
# local-k8s: --offline, images never pulled). The controller's image is built
# with ko, offline, to a tarball (images/controller/build.sh: the base image
# comes from the private podman storage, there being no registry).
CONTROLLER_IMAGE ?= localhost/pod-runner-controller:dev
CONTROLLER_TAR   := $(PODMAN_DIR)/k8s/controller.tar
KO               := github.com/google/ko@v0.18.1
DEPLOY_KUBECONFIG ?= $(K8S_STATE)/kubeconfig/admin.kubeconfig
DEPLOY_DIR       ?= config/local

.PHONY: controller-image k8s-controller-image tekton-crds deploy undeploy

## controller-image: localhost/pod-runner-controller:dev (ko: /ko-app/injector,
## user 65532) as a tarball under .cache/podman/k8s
controller-image: podman-setup
	$(PODMAN_ENV) GO=$(GO) KO=$(KO) images/controller/build.sh $(CONTROLLER_IMAGE) $(CONTROLLER_TAR)

## k8s-controller-image: the controller's image imported into the local
## cluster's containerd, with the images its runs use
k8s-controller-image: controller-image k8s-images
	ctr -a $(K8S_STATE)/containerd/containerd.sock -n k8s.io images import $(CONTROLLER_TAR) >/dev/null

## tekton-crds: the pinned Tekton module's CRDs (no Tekton controller needed)
tekton-crds:
	KUBECONFIG=$(DEPLOY_KUBECONFIG) kubectl apply --server-side --force-conflicts \
	  -f $$($(GO) list -m -f '{{.Dir}}' github.com/tektoncd/pipeline)/config/300-crds

## deploy: the controller in the local cluster (DEPLOY_DIR=config/default
## and DEPLOY_KUBECONFIG for another cluster, its image pushed there first)
deploy: k8s-controller-image tekton-crds
	KUBECONFIG=$(DEPLOY_KUBECONFIG) kubectl apply -k config/crd
	KUBECONFIG=$(DEPLOY_KUBECONFIG) kubectl apply -k $(DEPLOY_DIR)
	KUBECONFIG=$(DEPLOY_KUBECONFIG) kubectl -n pod-runner rollout restart deployment/pod-runner-controller
	KUBECONFIG=$(DEPLOY_KUBECONFIG) kubectl -n pod-runner rollout status deployment/pod-runner-controller --timeout=120s

## undeploy: remove what deploy applied (not the CRDs: config/crd's
## PodPipeline objects stay)
undeploy:
	KUBECONFIG=$(DEPLOY_KUBECONFIG) kubectl delete --ignore-not-found -k $(DEPLOY_DIR)

# ---- Tekton's own controller side by side (issue 4) --------------------------
# test/tektonlocal builds Tekton v1.15.1's controller and pod images from the
# pinned module (.cache/tekton: ~3.5 min cold, ~3 s warm) and runs it on the
# host against local-k8s, scoped to the test's namespace, one at a time.
# make e2e runs the parity test (test/cluster) and the matrix comparison
# (test/oracle) with it.
.PHONY: bench-cluster parity
BENCH_RUNS ?= 3

## bench-cluster: the same PipelineRuns (5-task chain, 10+1 fan-out, 1 task)
## through Tekton's controller and ours (create → Succeeded, ratios, status
## lag), and the status stream and controller peak memory of a 50- and a
## 200-task chain through ours
bench-cluster: k8s-images
	POD_RUNNER_BENCH_CLUSTER=1 POD_RUNNER_BENCH_RUNS=$(BENCH_RUNS) LOCAL_K8S=$(LOCAL_K8S) \
	  KUBECONFIG=$(K8S_STATE)/kubeconfig/admin.kubeconfig \
	  $(GO) test -count=1 -v -timeout 30m -run 'TestCompare|TestStatusGrowth' ./test/clusterbench/

## bench-load: LOAD_RUNS (100) PipelineRuns of a 5-task chain created at
## once, through Tekton's controller and then ours (runs/min, create →
## Succeeded p50/p99, controller CPU and peak RSS)
LOAD_RUNS ?= 100
.PHONY: bench-load
bench-load: k8s-images
	POD_RUNNER_BENCH_LOAD=1 POD_RUNNER_LOAD_RUNS=$(LOAD_RUNS) LOCAL_K8S=$(LOCAL_K8S) \
	  KUBECONFIG=$(K8S_STATE)/kubeconfig/admin.kubeconfig \
	  $(GO) test -count=1 -v -timeout 90m -run 'TestLoad' ./test/clusterbench/

## parity: only the field-by-field comparison with Tekton's controller
parity: k8s-images
	POD_RUNNER_CLUSTER=1 LOCAL_K8S=$(LOCAL_K8S) KUBECONFIG=$(K8S_STATE)/kubeconfig/admin.kubeconfig \
	  $(GO) test -count=1 -v -run 'TestParity' ./test/cluster/
