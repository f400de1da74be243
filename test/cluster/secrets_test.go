package cluster

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/secrettest"
	"github.com/e7763abc/pod-runner/test/kube"
	"github.com/e7763abc/pod-runner/test/testbin"
)

// canaryRun gives the Secret "canary" to task uses in every way Tekton
// allows — env valueFrom.secretKeyRef, envFrom.secretRef, a Secret
// workspace laid out by items, and a Task volume — and has it report only
// digests of what it saw. Task other binds nothing.
const canaryRun = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: run}
spec:
  managedBy: pod-runner.dev/controller
  taskRunTemplate: {serviceAccountName: default}
  workspaces:
  - name: creds
    secret:
      secretName: canary
      items: [{key: token, path: nested/tok}]
  pipelineSpec:
    workspaces: [{name: creds}]
    tasks:
    - name: uses
      workspaces: [{name: creds, workspace: creds}]
      taskSpec:
        workspaces: [{name: creds, readOnly: true}]
        results: [{name: env}, {name: envfrom}, {name: file}, {name: volume}]
        volumes: [{name: sv, secret: {secretName: canary}}]
        steps:
        - name: digest
          image: localhost/busybox:pod-runner
          env:
          - name: TOKEN
            valueFrom: {secretKeyRef: {name: canary, key: token}}
          envFrom:
          - secretRef: {name: canary}
            prefix: S_
          volumeMounts: [{name: sv, mountPath: /sv}]
          script: |
            printf %s "$TOKEN" | sha256sum | cut -c1-64 | tr -d '\n' > $(results.env.path)
            printf %s "$S_token" | sha256sum | cut -c1-64 | tr -d '\n' > $(results.envfrom.path)
            sha256sum < $(workspaces.creds.path)/nested/tok | cut -c1-64 | tr -d '\n' > $(results.file.path)
            sha256sum < /sv/token | cut -c1-64 | tr -d '\n' > $(results.volume.path)
    - name: other
      taskSpec:
        results: [{name: seen}]
        steps:
        - name: look
          image: localhost/busybox:pod-runner
          script: |
            printf '%s' "${TOKEN-none}${S_token-none}$(cat /sv/token 2>/dev/null)" > $(results.seen.path)
`

// TestSecretCanary: the Secret reaches its task through the kubelet, and
// no place the controller or the Pod writes holds its value: the Pod spec
// (the Plan gzipped in it included), the supervisor's log, the TaskRuns and
// the PipelineRun, the namespace's Events and the controller's own log.
// Only uses' containers refer to it.
func TestSecretCanary(t *testing.T) {
	enabled(t)
	installCRDs(t)
	ns := kube.Namespace(t, "pr-secret")
	bin, err := testbin.Build("github.com/e7763abc/pod-runner/cmd/injector")
	if err != nil {
		t.Fatal(err)
	}
	stop, controllerLog := kube.StartControllerLogged(t, bin, ns)
	raw := make([]byte, 12)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	value := "canary-" + hex.EncodeToString(raw)
	kube.Kubectl(t, "", "-n", ns, "create", "secret", "generic", "canary", "--from-literal=token="+value)
	kube.Kubectl(t, canaryRun, "-n", ns, "create", "-f", "-")

	var pr *v1.PipelineRun
	kube.WaitFor(t, 3*time.Minute, "the run to end", func() bool {
		pr = getPipelineRun(t, ns, "run")
		return pr.IsDone()
	})
	r := &finished{pr: pr, trs: taskRuns(t, ns, "run")}
	expect(t, "run", r.reason(), "Succeeded")
	sum := sha256.Sum256([]byte(value))
	for _, res := range []string{"env", "envfrom", "file", "volume"} {
		expect(t, "uses "+res+" digest", r.result("uses", res), hex.EncodeToString(sum[:]))
	}
	expect(t, "what other saw", r.result("other", "seen"), "nonenone")

	pods := kube.Kubectl(t, "", "-n", ns, "get", "pods", "-o", "yaml")
	var pod corev1.Pod
	if err := yaml.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "pod", r.trs["uses"].Status.PodName, "-o", "yaml")), &pod); err != nil {
		t.Fatal(err)
	}
	stop()
	logBytes, err := os.ReadFile(controllerLog)
	if err != nil {
		t.Fatal(err)
	}
	places := map[string]string{
		"the Pods":             pods,
		"the supervisor's log": kube.Kubectl(t, "", "-n", ns, "logs", pod.Name, "-c", podlayout.SupervisorContainer),
		"the PipelineRun":      kube.Kubectl(t, "", "-n", ns, "get", "pipelinerun", "run", "-o", "yaml"),
		"the TaskRuns":         kube.Kubectl(t, "", "-n", ns, "get", "taskruns", "-o", "yaml"),
		"the Events":           kube.Kubectl(t, "", "-n", ns, "get", "events", "-o", "yaml"),
		"the controller's log": string(logBytes),
	}
	for where, text := range places {
		if !strings.Contains(where, "log") && len(text) < 100 {
			t.Errorf("%s: nearly empty (%q): the check would mean nothing", where, text)
		}
		if how := secrettest.Find(text, value); how != "" {
			t.Errorf("%s hold the Secret's value (%s)", where, how)
		}
	}

	// Only uses' containers refer to the Secret; its volumes are the
	// user's Secret by name.
	for _, c := range pod.Spec.Containers {
		refers := len(c.EnvFrom) > 0
		for _, e := range c.Env {
			refers = refers || e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
		}
		for _, m := range c.VolumeMounts {
			for _, v := range pod.Spec.Volumes {
				refers = refers || v.Name == m.Name && v.Secret != nil
			}
		}
		if want := c.Name == podlayout.StepContainer("uses", "digest"); refers != want {
			t.Errorf("container %s: refers to the Secret: %v, want %v", c.Name, refers, want)
		}
	}
	for _, v := range pod.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName != "canary" {
			t.Errorf("volume %s mounts Secret %q, not the user's", v.Name, v.Secret.SecretName)
		}
	}
}
