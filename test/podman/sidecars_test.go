package podman

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/sidecar"
)

// A task's sidecar serves a file over a port from a shared workspace; the
// task's step fetches it (sidecars and steps share the Pod's network), then
// the sidecar is stopped and a later task runs: the Pod completes, and every
// container, the sidecar's included, exits 0.
func TestSidecarInPod(t *testing.T) {
	needPipeline(t)
	name := fmt.Sprintf("e2e-sidecar-%x", time.Now().UnixNano()&0xffffffff)
	yaml := strings.ReplaceAll(`apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: NAME}
spec:
  params: [{name: port, value: "18080"}]
  workspaces: [{name: shared, emptyDir: {}}]
  pipelineSpec:
    params: [{name: port}]
    workspaces: [{name: shared}]
    results: [{name: fetched, value: "$(tasks.fetch.results.body)"}]
    tasks:
    - name: fetch
      params: [{name: port, value: "$(params.port)"}]
      workspaces: [{name: www, workspace: shared}]
      taskSpec:
        params: [{name: port}]
        workspaces: [{name: www}]
        results: [{name: body}]
        sidecars:
        - name: server
          image: localhost/busybox:pod-runner
          script: |
            echo -n served-by-sidecar > $(workspaces.www.path)/index.html
            echo serving on $(params.port)
            exec httpd -f -p $(params.port) -h $(workspaces.www.path)
        steps:
        - name: get
          image: localhost/busybox:pod-runner
          script: |
            for i in $(seq 100); do
              wget -q -O $(results.body.path) http://localhost:$(params.port)/index.html && exit 0
              sleep 0.1
            done
            echo the sidecar never answered; exit 1
    - name: after
      runAfter: [fetch]
      params: [{name: body, value: "$(tasks.fetch.results.body)"}]
      taskSpec:
        params: [{name: body}]
        steps:
        - name: check
          image: localhost/busybox:pod-runner
          script: |
            # The sidecar was stopped when its task's steps ended.
            if wget -q -T 1 -O- http://localhost:$(params.port)/index.html 2>/dev/null; then echo still serving; exit 1; fi
            echo got $(params.body)
`, "NAME", name)
	r := runInPod(t, name, yaml, 2*time.Minute, nil)
	expect(t, "run", r.reason(), "True/Succeeded")
	expect(t, "result fetched", r.result("fetched"), `"served-by-sidecar"`)
	expect(t, "after", r.taskReason("after"), "True/Succeeded")

	server := podlayout.SidecarContainer("fetch", "server")
	for _, c := range r.pod.spec.Spec.Containers {
		if got := r.pod.exitCode(t, c.Name); got != 0 {
			t.Errorf("container %s exited %d", c.Name, got)
		}
	}
	if log := r.pod.logs(t, server); !strings.Contains(log, "serving on 18080") {
		t.Errorf("the sidecar container's log lacks the sidecar's output:\n%s", log)
	}
	// The published status holds the sidecar: stopped, as Tekton marks it.
	stream, err := sidecar.Read(strings.NewReader(r.pod.logs(t, podlayout.SupervisorContainer)))
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, ts := range stream.Final.GetTasks() {
		for _, sc := range ts.GetSidecars() {
			states = append(states, fmt.Sprintf("%s/%s %s %s terminated=%v", ts.GetName(), sc.GetName(), sc.GetContainer(), sc.GetReason(), sc.GetTerminated()))
		}
	}
	if want := "fetch/server sidecar-server Completed terminated=true"; strings.Join(states, ";") != want {
		t.Errorf("sidecar states %q, want %q", states, want)
	}
}
