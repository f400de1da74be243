package podman

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hermeticRun: "serve" runs a TCP server on the pod's loopback until the
// others are done; "open" reaches it; "sealed", marked hermetic through
// taskRunSpecs (docs/hermetic.md, docs/pipelineruns.md), runs after "open"
// has reached it, in the same pod, and must not. Every task ends within
// its bounded loops, whatever happens, so a failure cannot hang the pod.
const hermeticRun = `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: NAME}
spec:
  workspaces: [{name: shared, emptyDir: {}}]
  taskRunSpecs:
  - pipelineTaskName: sealed
    metadata:
      annotations: {experimental.tekton.dev/execution-mode: hermetic}
  pipelineSpec:
    workspaces: [{name: shared}]
    tasks:
    - name: serve
      workspaces: [{name: ws, workspace: shared}]
      taskSpec:
        workspaces: [{name: ws}]
        steps:
        - name: serve
          image: localhost/busybox:pod-runner
          script: |
            busybox httpd -f -p 127.0.0.1:PORT -h $(workspaces.ws.path) & pid=$!
            i=0
            while [ ! -e $(workspaces.ws.path)/done ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
            kill $pid
    - name: open
      taskSpec:
        results: [{name: server}]
        steps:
        - name: probe
          image: localhost/busybox:pod-runner
          script: |
            i=0
            until busybox nc -w 2 127.0.0.1 PORT </dev/null; do
              i=$((i+1)); [ $i -lt 100 ] || { printf unreachable > $(results.server.path); exit 0; }
              sleep 0.1
            done
            printf reached > $(results.server.path)
    - name: sealed
      runAfter: [open]
      workspaces: [{name: ws, workspace: shared}]
      taskSpec:
        workspaces: [{name: ws}]
        results: [{name: server}, {name: links}, {name: mode}]
        steps:
        - name: probe
          image: localhost/busybox:pod-runner
          script: |
            touch $(workspaces.ws.path)/done
            if busybox nc -w 2 127.0.0.1 PORT </dev/null; then r=reached; else r=unreachable; fi
            printf %s "$r" > $(results.server.path)
            busybox ip -o link | cut -d' ' -f2 | tr -d '\n' > $(results.links.path)
            printf %s "${TEKTON_HERMETIC:-unset}" > $(results.mode.path)
`

// TestHermeticTaskInPod: in one Pod, a hermetic task cannot reach a server
// on the pod's own loopback that a task without the annotation reaches;
// `pod-runner run` gives the same status.
func TestHermeticTaskInPod(t *testing.T) {
	needPipeline(t)
	name := fmt.Sprintf("e2e-hermetic-%x", time.Now().UnixNano()&0xffffffff)
	// A port of its own, so that the local run beside it cannot collide
	// with another test's server.
	port := strconv.Itoa(20000 + rand.IntN(20000))
	yaml := strings.NewReplacer("NAME", name, "PORT", port).Replace(hermeticRun)
	r := runInPod(t, name, yaml, 2*time.Minute, nil)
	taskResult := func(task, result string) string {
		tr, ok := r.taskRuns[task]
		if !ok {
			return "(no TaskRun)"
		}
		for _, res := range tr.Status.Results {
			if res.Name == result {
				return res.Value.StringVal
			}
		}
		return "(none)"
	}
	expect(t, "run", r.reason(), "True/Succeeded")
	expect(t, "open reaches the server", taskResult("open", "server"), "reached")
	expect(t, "sealed reaches the server", taskResult("sealed", "server"), "unreachable")
	expect(t, "sealed's links", taskResult("sealed", "links"), "lo:")
	expect(t, "sealed's TEKTON_HERMETIC", taskResult("sealed", "mode"), "1")
	if t.Failed() {
		t.Logf("pod logs:\n%s", r.pod.allLogs())
	}
	local := runLocally(t, yaml)
	if got, want := r.summary(), local.summary(); got != want {
		t.Errorf("the pod and pod-runner run disagree\npod:\n%s\npod-runner run:\n%s", got, want)
	}
}
