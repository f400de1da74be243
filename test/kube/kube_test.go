package kube

import (
	"os/exec"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// TestTektonCRDs: every CRD of the release, the ResolutionRequest's status
// requiring nothing in either version.
func TestTektonCRDs(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tektoncd/pipeline").Output()
	if err != nil {
		t.Fatal(err)
	}
	b, err := TektonCRDs(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.Unmarshal([]byte(doc), crd); err != nil || crd.Name == "" {
			continue
		}
		seen[crd.Name] = true
		if crd.Name != "resolutionrequests.resolution.tekton.dev" {
			continue
		}
		for _, v := range crd.Spec.Versions {
			status := v.Schema.OpenAPIV3Schema.Properties["status"]
			if len(status.Required) != 0 || status.Properties["data"].Type != "string" {
				t.Errorf("%s status requires %v (data %+v), want nothing required, the fields kept", v.Name, status.Required, status.Properties["data"])
			}
		}
	}
	for _, want := range []string{"pipelineruns.tekton.dev", "taskruns.tekton.dev", "customruns.tekton.dev", "stepactions.tekton.dev", "resolutionrequests.resolution.tekton.dev"} {
		if !seen[want] {
			t.Errorf("no CRD %s among %v", want, seen)
		}
	}
}
