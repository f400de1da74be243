// Package k8s creates compiled run Pods on a real Kubernetes API server and
// kubelet (../shared/tools/local-k8s, through `make k8s-e2e`) and checks they
// are accepted and run to completion, which podman cannot prove.
package k8s

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/sidecar"
	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/test/testbin"
)

// enabled: these tests need a running cluster with the images imported,
// which `make k8s-e2e` provides; `make test` does not run them.
func enabled(t *testing.T) {
	t.Helper()
	testenv.Require(t, "a cluster", testenv.Env("POD_RUNNER_K8S", "make e2e or make k8s-e2e, with KUBECONFIG,"))
}

func kubectl(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// create creates the manifest's objects, deleting them when the test ends,
// and returns the Pod's name.
func create(t *testing.T, manifest []byte) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := kubectl(ctx, manifest, "create", "-f", "-", "-o", "name")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := kubectl(ctx, manifest, "delete", "--ignore-not-found", "--wait=false", "-f", "-"); err != nil {
			t.Errorf("delete: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("the API server refused the manifest: %v\n%s", err, manifest)
	}
	for _, line := range strings.Fields(out) {
		if name, ok := strings.CutPrefix(line, "pod/"); ok {
			return name
		}
	}
	t.Fatalf("no Pod created: %s", out)
	return ""
}

// waitEnded polls the Pod until its phase is Succeeded or Failed.
func waitEnded(t *testing.T, name string, timeout time.Duration) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := kubectl(ctx, nil, "get", "pod", name, "-o", "json")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var p corev1.Pod
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatal(err)
		}
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			return &p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s still %s after %s:\n%s", name, p.Status.Phase, timeout, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func logs(t *testing.T, pod, container string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := kubectl(ctx, nil, "logs", pod, "-c", container)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestImages runs the two local images under the kubelet: the pod-runner
// image as an init container, busybox as the container.
func TestImages(t *testing.T) {
	enabled(t)
	name := fmt.Sprintf("images-%x", time.Now().UnixNano()&0xffffffff)
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  restartPolicy: Never
  initContainers:
  - {name: init, image: localhost/pod-runner:dev, args: [help]}
  containers:
  - {name: shell, image: localhost/busybox:pod-runner, command: [sh, -c, "echo hello from busybox"]}
`, name)
	start := time.Now()
	pod := create(t, []byte(manifest))
	p := waitEnded(t, pod, 2*time.Minute)
	t.Logf("created to %s: %s", p.Status.Phase, time.Since(start).Round(time.Millisecond))
	if p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("phase %s: %+v", p.Status.Phase, p.Status)
	}
	if got := logs(t, pod, "init"); !strings.Contains(got, "usage: pod-runner") {
		t.Errorf("init log: %q", got)
	}
	if got := logs(t, pod, "shell"); !strings.Contains(got, "hello from busybox") {
		t.Errorf("shell log: %q", got)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// TestCompiledPod creates the Pod `injector compile` makes for a run with a
// shared workspace and results, and requires it to succeed under a real
// kubelet with the supervisor's termination message set.
func TestCompiledPod(t *testing.T) {
	enabled(t)
	injector, err := testbin.Build("github.com/e7763abc/pod-runner/cmd/injector")
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("k8s-%x", time.Now().UnixNano()&0xffffffff)
	run := strings.ReplaceAll(`apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: NAME}
spec:
  workspaces: [{name: shared, emptyDir: {}}]
  pipelineSpec:
    workspaces: [{name: shared}]
    results: [{name: both, value: "$(tasks.read.results.both)"}]
    tasks:
    - name: write
      workspaces: [{name: ws, workspace: shared}]
      taskSpec:
        workspaces: [{name: ws}]
        steps:
        - {name: write, image: localhost/busybox:pod-runner, script: "echo -n ab > $(workspaces.ws.path)/f"}
    - name: read
      runAfter: [write]
      workspaces: [{name: ws, workspace: shared}]
      taskSpec:
        workspaces: [{name: ws}]
        results: [{name: both}]
        steps:
        - {name: read, image: localhost/busybox:pod-runner, script: "cat $(workspaces.ws.path)/f | tee $(results.both.path)"}
`, "NAME", name)
	cmd := exec.Command(injector, "compile", "-f", "-", "--image", "localhost/pod-runner:dev", "--namespace", "default", "-o", "yaml")
	cmd.Stdin = strings.NewReader(run)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	manifest, err := cmd.Output()
	if err != nil {
		t.Fatalf("injector compile: %v\n%s", err, stderr.String())
	}
	if _, err := yaml.YAMLToJSON(manifest); err != nil {
		t.Fatalf("injector output is not YAML: %v", err)
	}
	start := time.Now()
	pod := create(t, manifest)
	p := waitEnded(t, pod, 3*time.Minute)
	t.Logf("created to %s: %s", p.Status.Phase, time.Since(start).Round(time.Millisecond))
	if p.Status.Phase != corev1.PodSucceeded {
		st, _ := json.MarshalIndent(p.Status, "", "  ")
		t.Fatalf("phase %s:\n%s", p.Status.Phase, st)
	}
	var message string
	for _, c := range p.Status.ContainerStatuses {
		if c.Name == podlayout.SupervisorContainer && c.State.Terminated != nil {
			message = c.State.Terminated.Message
		}
	}
	// A controller reads the condition from the termination message and
	// the results from the supervisor's log, through the API server alone.
	summary, err := sidecar.ParseTermination(message)
	if err != nil {
		t.Fatalf("termination message %q: %v", message, err)
	}
	if c := summary.GetCondition(); c.GetStatus() != "True" || c.GetReason() != "Succeeded" {
		t.Errorf("termination message condition: %v", c)
	}
	stream, err := sidecar.Read(strings.NewReader(logs(t, pod, podlayout.SupervisorContainer)))
	if err != nil || stream.Final == nil {
		t.Fatalf("supervisor log: final status missing (err %v)", err)
	}
	var both string
	for _, r := range stream.Final.GetResults() {
		if r.GetName() == "both" {
			both = r.GetValue().GetStringValue()
		}
	}
	if both != "ab" {
		t.Errorf("pipeline result both: %s", both)
	}
	if got := logs(t, pod, podlayout.StepContainer("read", "read")); !strings.Contains(got, "ab") {
		t.Errorf("read's log: %q", got)
	}
}
