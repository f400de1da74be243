package podman

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestSmoke plays a plain busybox Pod with the shapes the run Pod relies
// on, proving the private podman set-up and podman 4.3's workarounds: an
// init container kept with its log (the init.container.type annotation), an
// emptyDir shared by parallel containers (named per run, as podman names
// the volume by its name alone), a ConfigMap volume in the same YAML (podman
// 4.3 has no downward API volumes), exit codes, per-container logs and the
// lowered rlimits; and a subPath of an emptyDir, which podman 4.3 ignores
// (podmanrun.SplitSubPaths).
func TestSmoke(t *testing.T) {
	needPodman(t)
	suffix := fmt.Sprintf("%x", time.Now().UnixNano())
	manifest := strings.ReplaceAll(`apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: smoke-plan-SUFFIX
  data:
    plan: hello-from-configmap
- apiVersion: v1
  kind: Pod
  metadata:
    name: smoke-SUFFIX
    labels:
      tekton.dev/pipelineRun: smoke-SUFFIX
    annotations:
      io.podman.annotations.init.container.type: always
  spec:
    restartPolicy: Never
    initContainers:
    - name: init
      image: localhost/busybox:pod-runner
      command: ["sh", "-c", "echo init-ran; echo init > /shared/init"]
      volumeMounts: [{name: shared-SUFFIX, mountPath: /shared}]
    containers:
    - name: writer
      image: localhost/busybox:pod-runner
      command: ["sh", "-c", "cat /shared/init; echo sub > /results/r; echo from-writer > /shared/w; cat /plan/plan; echo; ulimit -n"]
      volumeMounts:
      - {name: shared-SUFFIX, mountPath: /shared}
      - {name: shared-SUFFIX, mountPath: /results, subPath: task/results}
      - {name: plan-SUFFIX, mountPath: /plan}
    - name: reader
      image: localhost/busybox:pod-runner
      command: ["sh", "-c", "while [ ! -f /shared/w ]; do sleep 0.1; done; cat /shared/w /shared/task/results/r; ls /shared; echo to-stderr >&2; exit 3"]
      volumeMounts: [{name: shared-SUFFIX, mountPath: /shared}]
    volumes:
    - name: shared-SUFFIX
      emptyDir: {}
    - name: plan-SUFFIX
      configMap:
        name: smoke-plan-SUFFIX
`, "SUFFIX", suffix)

	p := play(t, []byte(manifest))
	p.wait(t, time.Minute)
	t.Logf("kube play to every container stopped: %s", p.ended.Round(time.Millisecond))

	if got := podsLabelled(t, "tekton.dev/pipelineRun", "smoke-"+suffix); got != 1 {
		t.Errorf("pods labelled with the run: %d, want 1", got)
	}
	cases := []struct {
		container string
		code      int
		log       []string
	}{
		{"init", 0, []string{"init-ran"}},
		{"writer", 0, []string{"init", "hello-from-configmap", "4096"}},
		{"reader", 3, []string{"from-writer", "sub", "to-stderr"}},
	}
	for _, c := range cases {
		if got := p.exitCode(t, c.container); got != c.code {
			t.Errorf("%s exited %d, want %d", c.container, got, c.code)
		}
		log := p.logs(t, c.container)
		for _, want := range c.log {
			if !strings.Contains(log, want) {
				t.Errorf("%s's log lacks %q:\n%s", c.container, want, log)
			}
		}
	}
}
