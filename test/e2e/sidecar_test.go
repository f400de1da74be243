package e2e

import (
	"strings"
	"testing"
)

// TestSidecars: a task's sidecar runs as a host process beside its steps,
// sees the task's workspace and params, and is stopped once the steps end
// (Tekton's status: terminated, Completed); a sidecar that fails on its own
// before a failing step is named in the failure (SidecarFailed).
func TestSidecars(t *testing.T) {
	r := run(t, `apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: sidecar}
spec:
  workspaces: [{name: w, emptyDir: {}}]
  params: [{name: word, value: hi}]
  taskSpec:
    params: [{name: word}]
    workspaces: [{name: w}]
    results: [{name: seen}]
    sidecars:
    - name: server
      image: busybox
      script: |
        printf '%s' "$(params.word) from the sidecar" > $(workspaces.w.path)/msg
        while true; do sleep 0.1; done
    steps:
    - name: client
      image: busybox
      script: |
        while [ ! -s $(workspaces.w.path)/msg ]; do sleep 0.05; done
        cat $(workspaces.w.path)/msg > $(results.seen.path)
`)
	if r.code != 0 {
		t.Fatalf("exit %d, want 0", r.code)
	}
	if got := r.tr.Status.Results[0].Value.StringVal; got != "hi from the sidecar" {
		t.Errorf("seen = %q", got)
	}
	sc := r.tr.Status.Sidecars
	if len(sc) != 1 || sc[0].Name != "server" || sc[0].Terminated == nil || sc[0].Terminated.Reason != "Completed" {
		t.Errorf("sidecars = %+v, want server terminated, Completed", sc)
	}

	r = run(t, `apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: crash}
spec:
  taskSpec:
    sidecars:
    - {name: crash, image: busybox, script: "exit 5"}
    steps:
    - {name: fail, image: busybox, script: "sleep 1; exit 2"}
`)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	c := r.tr.Status.GetCondition("Succeeded")
	if c == nil || c.Reason != "SidecarFailed" || !strings.Contains(c.Message, `"sidecar-crash" exited with code 5`) {
		t.Errorf("condition = %+v, want SidecarFailed naming sidecar-crash", c)
	}
}
