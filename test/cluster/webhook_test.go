package cluster

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/internal/admission"
	"github.com/e7763abc/pod-runner/test/kube"
	"github.com/e7763abc/pod-runner/test/remotes"
	"github.com/e7763abc/pod-runner/test/testbin"
)

// webhookConfiguration is config/default's webhook, calling a controller
// on this host by URL (the API server runs here too), for the namespaces
// whose labels match matchLabels (a YAML flow mapping).
func webhookConfiguration(name string, port int, matchLabels string) string {
	return fmt.Sprintf(`apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: %s}
webhooks:
- name: delegate.pod-runner.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Ignore
  timeoutSeconds: 5
  matchPolicy: Equivalent
  namespaceSelector:
    matchLabels: %s
  rules:
  - {apiGroups: [tekton.dev], apiVersions: [v1], resources: [pipelineruns], operations: [CREATE], scope: Namespaced}
  clientConfig:
    url: https://127.0.0.1:%d%s
`, name, matchLabels, port, admission.Path)
}

func plainRun(name, extra string) string {
	return fmt.Sprintf(`apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: %s%s}
spec:
  pipelineSpec:
    tasks:
    - name: t
      taskSpec:
        steps: [{name: s, image: localhost/busybox:pod-runner, script: "echo delegated"}]
`, name, extra)
}

// TestWebhookDelegatesLabelledNamespaces: with the controller's webhook
// registered (its CA put in the configuration by the controller), a
// PipelineRun created unchanged in a labelled namespace gets
// spec.managedBy and runs as one Pod; one that opts out, one that names
// another manager, and one in a namespace not labelled are left as they
// were.
func TestWebhookDelegatesLabelledNamespaces(t *testing.T) {
	enabled(t)
	installCRDs(t)
	ns, other := kube.Namespace(t, "pr-webhook"), kube.Namespace(t, "pr-webhook")
	kube.Kubectl(t, "", "label", "namespace", ns, admission.NamespaceLabel+"=true", "pod-runner.dev/test="+ns)
	kube.Kubectl(t, "", "label", "namespace", other, "pod-runner.dev/test="+ns)
	name, port := "pod-runner-"+ns, remotes.FreePort(t)
	// The namespaces of this test only: labelled managed, and with its own label.
	kube.Kubectl(t, webhookConfiguration(name, port, fmt.Sprintf(`{%s: "true", pod-runner.dev/test: %s}`, admission.NamespaceLabel, ns)), "apply", "-f", "-")
	t.Cleanup(func() { kube.Kubectl(t, "", "delete", "mutatingwebhookconfiguration", name, "--ignore-not-found") })

	bin, err := testbin.Build("github.com/e7763abc/pod-runner/cmd/injector")
	if err != nil {
		t.Fatal(err)
	}
	kube.StartControllerProcess(t, bin, ns, fmt.Sprint("--webhook-port=", port), "--webhook-host=127.0.0.1",
		"--webhook-cert-host=127.0.0.1", "--webhook-configuration="+name)
	// Failing open, the webhook must be up (and trusted) before the runs
	// are created, or they would go unchanged.
	kube.WaitFor(t, time.Minute, "the webhook to serve and its CA to be in the configuration", func() bool {
		c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return false
		}
		c.Close()
		return kube.Kubectl(t, "", "get", "mutatingwebhookconfiguration", name, "-o", "jsonpath={.webhooks[0].clientConfig.caBundle}") != ""
	})

	kube.Kubectl(t, plainRun("plain", "")+"---\n"+
		plainRun("optout", ", annotations: {"+admission.OptOutAnnotation+`: "false"}`)+"---\n"+
		strings.Replace(plainRun("tekton", ""), "spec:\n", "spec:\n  managedBy: tekton.dev/pipeline\n", 1),
		"-n", ns, "create", "-f", "-")
	kube.Kubectl(t, plainRun("plain", ""), "-n", other, "create", "-f", "-")

	for _, tc := range []struct{ ns, run, managedBy string }{
		{ns, "plain", "pod-runner.dev/controller"},
		{ns, "optout", ""},
		{ns, "tekton", "tekton.dev/pipeline"},
		{other, "plain", ""},
	} {
		pr := getPipelineRun(t, tc.ns, tc.run)
		got := ""
		if pr.Spec.ManagedBy != nil {
			got = *pr.Spec.ManagedBy
		}
		if got != tc.managedBy {
			t.Errorf("%s/%s: spec.managedBy %q, want %q", tc.ns, tc.run, got, tc.managedBy)
		}
	}
	kube.WaitFor(t, 2*time.Minute, "the delegated run to end", func() bool { return getPipelineRun(t, ns, "plain").IsDone() })
	if pr := getPipelineRun(t, ns, "plain"); !pr.IsSuccessful() {
		t.Errorf("plain ended %+v", pr.Status.Conditions)
	}
	if n := len(podsOf(t, ns, "plain")); n != 1 {
		t.Errorf("%d pods for the delegated run, want 1", n)
	}
	for _, run := range []string{"optout", "tekton"} {
		if pr := getPipelineRun(t, ns, run); len(pr.Status.Conditions) != 0 || len(podsOf(t, ns, run)) != 0 {
			t.Errorf("%s was run by pod-runner: %+v", run, pr.Status.Conditions)
		}
	}

}
