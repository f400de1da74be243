package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"knative.dev/pkg/apis"

	"github.com/e7763abc/pod-runner/internal/hermetic"
	"github.com/e7763abc/pod-runner/internal/hermetic/hermetictest"
	"github.com/e7763abc/pod-runner/internal/testenv"
)

// hermeticPipeline: a server's address as params; "open" and "sealed" run
// the same Task, "sealed" marked hermetic through taskRunSpecs, as Tekton
// users do (docs/hermetic.md, docs/pipelineruns.md).
const hermeticPipeline = `
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: probe}
spec:
  params: [{name: host}, {name: port}]
  results: [{name: server}, {name: links}, {name: mode}]
  steps:
  - image: busybox
    script: |
      if busybox nc -w 2 $(params.host) $(params.port) </dev/null; then r=reached; else r=unreachable; fi
      printf %s "$r" > $(results.server.path)
      busybox ip -o link | cut -d' ' -f2 | tr -d '\n' > $(results.links.path)
      printf %s "${TEKTON_HERMETIC:-unset}" > $(results.mode.path)
---
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: hermetic}
spec:
  params: [{name: host, value: HOST}, {name: port, value: "PORT"}]
  taskRunSpecs:
  - pipelineTaskName: sealed
    metadata:
      annotations: {experimental.tekton.dev/execution-mode: hermetic}
  pipelineSpec:
    params: [{name: host}, {name: port}]
    tasks:
    - name: open
      taskRef: {name: probe}
      params: [{name: host, value: $(params.host)}, {name: port, value: $(params.port)}]
    - name: sealed
      taskRef: {name: probe}
      params: [{name: host, value: $(params.host)}, {name: port, value: $(params.port)}]
`

// server is an address of a TCP listener on every address of this host:
// one other than loopback when there is one.
func server(t *testing.T) (host, port string) {
	t.Helper()
	addrs := hermetictest.Listener(t)
	host, port, _ = net.SplitHostPort(addrs[len(addrs)-1])
	return host, port
}

// A hermetic task of a PipelineRun cannot reach a server that the other
// task of the same run reaches, sees only lo, and has TEKTON_HERMETIC=1.
func TestHermeticTask(t *testing.T) {
	testenv.Require(t, "busybox", testenv.Busybox())
	testenv.Require(t, "user namespaces for hermetic steps", hermetic.Check())
	host, port := server(t)
	r := run(t, strings.NewReplacer("HOST", host, "PORT", port).Replace(hermeticPipeline))
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	for task, want := range map[string][3]string{
		"open":   {"reached", "", "unset"},
		"sealed": {"unreachable", "lo:", "1"},
	} {
		if got := r.taskResult(t, task, "server").StringVal; got != want[0] {
			t.Errorf("%s: server %s:%s %s, want %s", task, host, port, got, want[0])
		}
		links := r.taskResult(t, task, "links").StringVal
		if want[1] != "" && links != want[1] || want[1] == "" && (links == "lo:" || links == "") {
			t.Errorf("%s: links %q", task, links)
		}
		if got := r.taskResult(t, task, "mode").StringVal; got != want[2] {
			t.Errorf("%s: TEKTON_HERMETIC %q, want %q", task, got, want[2])
		}
	}
}

// Where user namespaces are refused, the hermetic task fails with a message
// saying what is missing, the other task runs, and the run fails (exit 1).
// The refusal is real: pod-runner runs as root of a user namespace that
// forbids namespaces below it.
func TestHermeticTaskRefused(t *testing.T) {
	testenv.Require(t, "busybox", testenv.Busybox())
	testenv.Require(t, "user namespaces for hermetic steps", hermetic.Check())
	testenv.Require(t, "root", testenv.Root("pod-runner must be root of its namespace to lower its limits"))
	// Exit 4: /proc/sys is read-only here (a container): skip.
	cmd := exec.Command("sh", "-c", `echo 0 > /proc/sys/user/max_user_namespaces || exit 4; exec "$0" run -f - -o json`, binary)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	hermetic.Isolate(cmd.SysProcAttr)
	cmd.Stdin = strings.NewReader(strings.NewReplacer("HOST", "127.0.0.1", "PORT", "1").Replace(hermeticPipeline))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := &result{stdout: stdout.String(), stderr: stderr.String(), taskRuns: map[string]*v1.TaskRun{}}
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 4 {
		testenv.Require(t, "a writable user.max_user_namespaces", fmt.Errorf("%s", r.stderr))
	}
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("run: %v, want exit 1\nstderr:\n%s", err, r.stderr)
	}
	r.code = 1
	r.decode(t)
	if got := r.taskReason(t, "open"); got != "Succeeded" {
		t.Errorf("open: %s, want Succeeded", got)
	}
	c := r.taskRuns["sealed"].Status.GetCondition(apis.ConditionSucceeded)
	// The step was refused: it failed, as Tekton's entrypoint fails it.
	if c.Reason != "StepFailed" {
		t.Errorf("sealed: %s, want StepFailed", c.Reason)
	}
	for _, want := range []string{"hermetic task: cannot create the step's user and network namespaces", "user.max_user_namespaces is 0", "the step was not run"} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("sealed's message %q\nlacks %q", c.Message, want)
		}
	}
}
