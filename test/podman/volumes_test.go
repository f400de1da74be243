package podman

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A Task's own volumes in the Pod (Tekton's docs/tasks.md "Specifying
// Volumes"): an emptyDir that two of its steps share at custom mount
// paths, and a ConfigMap given as a document, mounted read-only; a second
// task's steps see neither.
func TestTaskVolumesInPod(t *testing.T) {
	needPipeline(t)
	name := fmt.Sprintf("e2e-volumes-%x", time.Now().UnixNano()&0xffffffff)
	yaml := strings.ReplaceAll(`apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: NAME}
spec:
  params: [{name: cm, value: NAME-settings}]
  pipelineSpec:
    params: [{name: cm}]
    results: [{name: seen, value: "$(tasks.vols.results.seen)"}]
    tasks:
    - name: vols
      params: [{name: cm, value: "$(params.cm)"}]
      taskSpec:
        params: [{name: cm}]
        results: [{name: seen}]
        volumes:
        - {name: scratch, emptyDir: {}}
        - name: conf
          configMap: {name: $(params.cm)}
        steps:
        - name: write
          image: localhost/busybox:pod-runner
          script: echo -n written-by-write > /scratch-a/file
          volumeMounts: [{name: scratch, mountPath: /scratch-a}]
        - name: read
          image: localhost/busybox:pod-runner
          script: |
            set -e
            if echo x > /etc/conf/new 2>/dev/null; then echo the ConfigMap volume is writable; exit 1; fi
            echo -n "$(cat /scratch-b/file)+$(cat /etc/conf/greeting)" | tee $(results.seen.path)
          volumeMounts:
          - {name: scratch, mountPath: /scratch-b}
          - {name: conf, mountPath: /etc/conf, readOnly: true}
    - name: other
      runAfter: [vols]
      taskSpec:
        steps:
        - name: look
          image: localhost/busybox:pod-runner
          script: |
            for p in /scratch-a /scratch-b /etc/conf; do
              if [ -e $p ]; then echo another task\'s volume is at $p; exit 1; fi
            done
---
apiVersion: v1
kind: ConfigMap
metadata: {name: NAME-settings}
data: {greeting: hello-from-configmap}
`, "NAME", name)
	r := runInPod(t, name, yaml, 2*time.Minute, nil)
	expect(t, "run", r.reason(), "True/Succeeded")
	expect(t, "result seen", r.result("seen"), `"written-by-write+hello-from-configmap"`)
	expect(t, "other", r.taskReason("other"), "True/Succeeded")
}
