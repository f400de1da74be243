package e2e

import (
	"strings"
	"testing"
)

const enumRun = `apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: enum}
spec:
  params: [{name: color, value: COLOR}]
  taskSpec:
    params: [{name: color, enum: [red, blue]}]
    steps: [{name: s, image: busybox, script: "echo $(params.color)"}]
`

const featureFlags = `---
apiVersion: v1
kind: ConfigMap
metadata: {name: feature-flags, namespace: tekton-pipelines}
data: {enable-param-enum: "true"}
`

// TestFeatureFlagsDocument: Tekton's feature-flags ConfigMap given as a
// document configures the run as it configures a cluster's Tekton: param
// enums are refused under a fresh install's flags, accepted and enforced
// with enable-param-enum.
func TestFeatureFlagsDocument(t *testing.T) {
	tests := []struct {
		name, yaml string
		code       int
		stderr     string
	}{
		{"fresh install's flags", strings.Replace(enumRun, "COLOR", "red", 1), 2, "feature flag `enable-param-enum` should be set to true"},
		{"enable-param-enum, a value in the enum", strings.Replace(enumRun, "COLOR", "red", 1) + featureFlags, 0, ""},
		{"enable-param-enum, a value not in it", strings.Replace(enumRun, "COLOR", "green", 1) + featureFlags, 2, "value: green is not in the enum list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.yaml)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d saying %q", r.code, r.stderr, tt.code, tt.stderr)
			}
		})
	}
}
