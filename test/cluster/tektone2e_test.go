package cluster

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/test/kube"
	"github.com/e7763abc/pod-runner/test/remotes"
	"github.com/e7763abc/pod-runner/test/tektonlocal"
	"github.com/e7763abc/pod-runner/test/testbin"
)

// tektonE2E are the tests of Tekton's own e2e suite (the pinned module's
// test/, build tag e2e) run against pod-runner's controller: the ones of
// dag, pipelinefinally, propagated params and results, matrix, timeout,
// cancel, ignore task error, task results from failed tasks and status
// that create PipelineRuns.
var tektonE2E = []string{
	"TestDAGPipelineRun",
	"TestPipelineLevelFinally_OneDAGTaskFailed_InvalidTaskResult_Failure",
	"TestPipelineLevelFinally_OneFinalTaskFailed_Failure",
	"TestPipelineLevelFinally_OneFinalTask_CancelledRunFinally",
	"TestPipelineLevelFinally_OneFinalTask_StoppedRunFinally",
	"TestPipelineLevelFinally_OneDAGNotProducingResult_SecondDAGUsingResult_Failure",
	"TestPropagatedParams",
	"TestPropagatedResults",
	"TestPipelineRunMatrixed",
	"TestPipelineRunMatrixedFailed",
	"TestPipelineRunTimeout",
	"TestPipelineTaskTimeout",
	"TestPipelineRunTasksTimeout",
	"TestPipelineRunTimeoutWithCompletedTaskRuns",
	"TestTaskRunPipelineRunCancel",
	"TestCancelActivePipelineRunWithCompletedTaskRuns",
	"TestFailingPipelineTaskOnContinue",
	"TestTaskResultsFromFailedTasks",
	"TestPipelineResultsFromFailedTasks",
	"TestProvenanceFieldInPipelineRunTaskRunStatus",
}

// tektonE2EAlpha are the named tests (or all their subtests) that run only
// with enable-api-fields: alpha, as Tekton's CI runs them; the others need
// beta (exactly) or nothing.
var tektonE2EAlpha = map[string]bool{
	"TestPipelineLevelFinally_OneFinalTask_CancelledRunFinally": true,
	"TestPipelineLevelFinally_OneFinalTask_StoppedRunFinally":   true,
	"TestPipelineRunMatrixed":                                   true,
	"TestPipelineRunMatrixedFailed":                             true,
	"TestPropagatedResults":                                     true,
}

// tektonE2ENotRun are the named files' tests that create a TaskRun of their
// own: pod-runner's webhook and controller take PipelineRuns, so such a
// TaskRun waits for Tekton's controller, which does not run here, until the
// suite's 15-minute timeout.
var tektonE2ENotRun = []string{"TestStepTimeout", "TestStepTimeoutWithWS", "TestTaskRunTimeout", "TestTaskRunPipelineRunStatus"}

// tektonE2ELedger are the run tests expected to fail, each with its reason;
// one that passes fails TestTektonE2E, so the ledger only shrinks.
// Each entry says why, and what the test's output must show (its failure
// being that one).
var tektonE2ELedger = map[string]struct{ why, shows string }{
	"TestPropagatedParams":  {specWhole, `&"pod-runner.dev/controller"`},
	"TestPropagatedResults": {specWhole, `&"pod-runner.dev/controller"`},
	"TestPipelineRunMatrixed": {"a matrix fans out from a task result (GOARCH from a task's results): pod mode refuses it, " +
		"a Pod's containers being fixed when it is created (the run ends PodCreationFailed, naming the field)", "Error waiting for PipelineRun"},
	"TestTaskResultsFromFailedTasks": {"it creates a tekton.dev/v1beta1 PipelineRun: the API server converts it through Tekton's " +
		"conversion webhook, which is not deployed here, and a v1beta1 run cannot be delegated anyway (the conversion drops spec.managedBy)",
		"conversion webhook for tekton.dev/v1beta1"},
	"TestProvenanceFieldInPipelineRunTaskRunStatus": {"its step is a #!/usr/bin/env bash script in mirror.gcr.io/ubuntu: the local cluster's " +
		"one image is busybox, which has no bash", "Error waiting for PipelineRun"},
}

// specWhole is why a test that compares a run's whole spec fails: a
// delegated run carries spec.managedBy (what pod-runner's webhook sets, the
// opt-in itself), and spec.timeouts as Tekton's defaulting webhook stores
// it is absent (that webhook is not deployed here; pod-runner's controller
// applies the same defaults when it compiles).
const specWhole = "it compares the PipelineRun's spec whole: a delegated run has spec.managedBy (set by pod-runner's webhook) " +
	"and no spec.timeouts (stored by Tekton's defaulting webhook, not deployed here)"

// TestTektonE2E runs the named tests of Tekton's e2e suite, built from the
// pinned module at test time, against pod-runner's controller: each of the
// suite's namespaces (which it labels tekton.dev/test-e2e=true) is opted in
// through pod-runner's webhook, so the suite's PipelineRuns, created
// unchanged, run as one Pod each. The controller watches every namespace,
// so this runs alone (make tekton-e2e, after the other cluster tests).
func TestTektonE2E(t *testing.T) {
	enabled(t)
	if os.Getenv("POD_RUNNER_TEKTON_E2E") == "" {
		testenv.Require(t, "the cluster to itself", errors.New("POD_RUNNER_TEKTON_E2E is not set: make tekton-e2e runs this alone, its controller watching every namespace"))
	}
	for _, n := range tektonE2ENotRun {
		if strings.Contains(strings.Join(tektonE2E, " "), n) {
			t.Fatalf("%s is both run and not run", n)
		}
	}
	installCRDs(t)
	// The suite keeps the namespace of a test that failed (its tearDown),
	// the ledger's among them; its namespaces all carry its label.
	t.Cleanup(func() {
		kube.Kubectl(t, "", "delete", "namespaces", "-l", "tekton.dev/test-e2e=true", "--wait=false", "--ignore-not-found")
	})
	suite, suiteDir := buildTektonE2E(t)

	// The suite reads Tekton's feature flags from SYSTEM_NAMESPACE; the
	// controller compiles runs with the same ones.
	system := kube.Namespace(t, "pr-tekton-system")
	kube.Kubectl(t, `apiVersion: v1
kind: ConfigMap
metadata: {name: config-defaults}
`, "-n", system, "apply", "-f", "-")
	name, port := "pod-runner-"+system, remotes.FreePort(t)
	kube.Kubectl(t, webhookConfiguration(name, port, `{tekton.dev/test-e2e: "true"}`), "apply", "-f", "-")
	t.Cleanup(func() { kube.Kubectl(t, "", "delete", "mutatingwebhookconfiguration", name, "--ignore-not-found") })
	// The suite's images, on a cluster with no registry: busybox for all.
	kube.MapImages(t, "pod-runner-images-"+system, "tekton.dev/test-e2e=true", func(image string) string {
		repo, _, _ := strings.Cut(image, ":")
		switch repo {
		case "mirror.gcr.io/busybox", "mirror.gcr.io/alpine", "mirror.gcr.io/ubuntu", "mirror.gcr.io/bash":
			return "localhost/busybox:pod-runner"
		}
		return ""
	})
	// One test names its Pipeline through the cluster resolver.
	tektonlocal.StartResolvers(t, tektonlocal.ResolversOptions{})
	bin, err := testbin.Build("github.com/e7763abc/pod-runner/cmd/injector")
	if err != nil {
		t.Fatal(err)
	}
	kube.StartControllerProcess(t, bin, "", fmt.Sprint("--webhook-port=", port), "--webhook-host=127.0.0.1",
		"--webhook-cert-host=127.0.0.1", "--webhook-configuration="+name, "--tekton-namespace="+system)
	kube.WaitFor(t, time.Minute, "the webhook to serve and its CA to be in the configuration", func() bool {
		c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return false
		}
		c.Close()
		out, err := exec.Command("kubectl", "get", "mutatingwebhookconfiguration", name, "-o", "jsonpath={.webhooks[0].clientConfig.caBundle}").Output()
		return err == nil && len(out) > 0
	})

	// Two passes, as Tekton's CI runs its suite once per feature-flag set.
	results := map[string]*e2eResult{}
	for _, fields := range []string{"beta", "alpha"} {
		var run []string
		for _, n := range tektonE2E {
			if tektonE2EAlpha[n] == (fields == "alpha") {
				run = append(run, n)
			}
		}
		kube.Kubectl(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: feature-flags}\ndata: {enable-api-fields: "+fields+"}\n",
			"-n", system, "apply", "-f", "-")
		time.Sleep(2 * time.Second) // the controller's cache hears the change
		maps.Copy(results, runTektonE2E(t, suite, suiteDir, system, run))
	}
	var names []string
	for n := range results {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.Logf("%-80s %s (%d subtests skipped)", n, results[n].action, results[n].skipped)
	}
	for _, n := range tektonE2E {
		r, ok := results[n]
		entry, expected := tektonE2ELedger[n]
		switch {
		case !ok:
			t.Errorf("%s did not run", n)
		case r.action == "pass" && expected:
			t.Errorf("%s passes: take it out of the ledger (%s)", n, entry.why)
		case r.action == "fail" && expected && !strings.Contains(strings.Join(r.output, ""), entry.shows):
			t.Errorf("%s failed, but not showing %q (its ledger reason: %s):\n%s", n, entry.shows, entry.why, failures(r.output))
		case r.action == "fail" && !expected:
			t.Errorf("%s failed:\n%s", n, failures(r.output))
		case r.action == "skip" || r.skipped > 0:
			t.Errorf("%s skipped itself (or %d of its subtests):\n%s", n, r.skipped, tail(r.output, 20))
		}
	}
}

// buildTektonE2E compiles the suite in the pinned module's own directory
// (its files import the module's internal packages, so they cannot be
// built from here) with the module's own go.sum.
func buildTektonE2E(t *testing.T) (bin, dir string) {
	t.Helper()
	bin = filepath.Join(t.TempDir(), "tekton-e2e.test")
	cmd := exec.Command("go", "test", "-tags", "e2e", "-c", "-o", bin, "./test")
	cmd.Dir = tektonModuleDir(t)
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build Tekton's e2e suite: %v\n%s", err, out)
	}
	// The suite reads its own sources (each test's @test:execution
	// annotation) from its working directory.
	return bin, filepath.Join(cmd.Dir, "test")
}

type e2eResult struct {
	action  string // pass, fail or skip
	skipped int    // subtests that skipped themselves
	output  []string
}

// runTektonE2E runs the named tests, four at a time, and reads how each
// ended through test2json.
func runTektonE2E(t *testing.T, suite, dir, system string, tests []string) map[string]*e2eResult {
	t.Helper()
	cmd := exec.Command("go", "tool", "test2json", "-t", suite, "-test.v", "-test.parallel", "4", "-test.timeout", "30m",
		"-test.run", "^("+strings.Join(tests, "|")+")$", "-kubeconfig", os.Getenv("KUBECONFIG"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SYSTEM_NAMESPACE="+system)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	results := map[string]*e2eResult{}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev struct{ Action, Test, Output string }
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Test == "" {
			continue
		}
		top := strings.SplitN(ev.Test, "/", 2)[0]
		r := results[top]
		if r == nil {
			r = &e2eResult{}
			results[top] = r
		}
		switch {
		case ev.Action == "output":
			r.output = append(r.output, ev.Output)
		case top == ev.Test && (ev.Action == "pass" || ev.Action == "fail" || ev.Action == "skip"):
			r.action = ev.Action
		case ev.Action == "skip":
			r.skipped++ // a subtest skipped itself (a feature gate)
		}
	}
	if err := cmd.Wait(); err != nil && len(results) == 0 {
		t.Fatalf("Tekton's e2e suite did not run: %v\n%s", err, stderr.String())
	}
	return results
}

// failures is a failed test's output up to the objects and logs the suite
// dumps after a failure (its tearDown).
func failures(lines []string) string {
	var keep []string
	for _, l := range lines {
		if strings.Contains(l, "### Dumping") {
			break
		}
		if !strings.Contains(l, "Create namespace") && !strings.Contains(l, "Verify SA") && !strings.HasPrefix(strings.TrimSpace(l), "###") {
			keep = append(keep, l)
		}
	}
	if len(keep) > 80 {
		keep = keep[len(keep)-80:]
	}
	return strings.Join(keep, "")
}

func tail(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}
