package podman

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runWith runs `pod-runner run` with args on the file, and returns its
// status, progress lines (stderr) and exit code.
func runWith(t *testing.T, file string, args ...string) (*tektonRun, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.local, append([]string{"run", "-f", file, "-o", "json"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("pod-runner run %v: %v\n%s", args, err, stderr.String())
	}
	if cmd.ProcessState.ExitCode() == 2 {
		return nil, stderr.String(), 2 // refused: no status
	}
	run, derr := decodeList(stdout.Bytes())
	if derr != nil {
		t.Fatalf("pod-runner run %v -o json: %v\nstderr:\n%s\nstdout:\n%s", args, derr, stderr.String(), stdout.String())
	}
	return run, stderr.String(), cmd.ProcessState.ExitCode()
}

// `pod-runner run --runtime podman` runs the bundled example as its one
// Pod, each step in its image (busybox, the image built here): the same
// Tekton status as the host-process mode, the same progress lines, each
// step's output with its [task/step] prefix, and nothing left behind.
func TestRunRuntimePodman(t *testing.T) {
	needPipeline(t)
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	example := filepath.Join(root, "examples", "build-and-test.yaml")
	before := len(podIDs(t))
	host, hostLog, hostCode := runWith(t, example)
	pod, podLog, podCode := runWith(t, example, "--runtime", "podman")
	if podCode != hostCode || podCode != 0 {
		t.Errorf("exit codes: podman %d, host %d", podCode, hostCode)
	}
	if h, p := host.summary(), pod.summary(); h != p {
		t.Errorf("status differs\nhost:\n%s\npodman:\n%s", h, p)
	}
	for _, want := range []string{"started   checkout", "Succeeded build", "skipped   deploy: When Expressions evaluated to false",
		"[build/compile] built app at commit 3f2a9c1", "[report/report] pipeline Completed; build Succeeded", "Completed build-and-test-run in"} {
		if !strings.Contains(hostLog, want) {
			t.Fatalf("the host run's progress lacks %q: the case is wrong\n%s", want, hostLog)
		}
		if !strings.Contains(podLog, want) {
			t.Errorf("the podman run's progress lacks %q:\n%s", want, podLog)
		}
	}
	if strings.Contains(podLog, "pod-runner.event/v1") {
		t.Errorf("the status stream reached the progress:\n%s", podLog)
	}
	if n := len(podIDs(t)) - before; n != 0 {
		t.Errorf("%d pods left behind", n)
	}

	// A host directory as a workspace is a hostPath volume of the Pod.
	dir := t.TempDir()
	run := filepath.Join(t.TempDir(), "ws.yaml")
	if err := os.WriteFile(run, []byte(`apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: ws}
spec:
  workspaces: [{name: out, emptyDir: {}}]
  pipelineSpec:
    workspaces: [{name: out}]
    tasks:
    - name: write
      workspaces: [{name: out}]
      taskSpec:
        workspaces: [{name: out}]
        steps:
        - name: write
          image: busybox
          script: echo from-the-pod > $(workspaces.out.path)/file
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, log, code := runWith(t, run, "--runtime", "podman", "--workspace", "out="+dir); code != 0 {
		t.Fatalf("exit %d:\n%s", code, log)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "file")); err != nil || string(b) != "from-the-pod\n" {
		t.Errorf("the workspace directory holds %q (%v)", b, err)
	}

	// Bad input is refused before anything runs, exit 2.
	if _, log, code := runWith(t, example, "--runtime", "docker"); code != 2 || !strings.Contains(log, "--runtime") {
		t.Errorf("--runtime docker: exit %d:\n%s", code, log)
	}
}
