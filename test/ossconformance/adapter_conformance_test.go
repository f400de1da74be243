//go:build conformance

package conformance_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"sigs.k8s.io/yaml"
)

// ProcessAndSendToTekton is the vendor function of Tekton's conformance
// suite: it runs the PipelineRun or TaskRun with `pod-runner run` (the
// binary POD_RUNNER_BIN names) and returns the final run, with its
// status, as YAML.
func ProcessAndSendToTekton(inputYAML, primitiveType string, _ ...interface{}) (string, error) {
	cmd := exec.Command(os.Getenv("POD_RUNNER_BIN"), "run", "-q", "-o", "json", "-f", "-")
	cmd.Stdin = strings.NewReader(inputYAML)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		// The run ran and failed: its status says how.
	case err != nil:
		return "", fmt.Errorf("pod-runner run: %v: %s", err, stderr.String())
	}
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if err := yaml.Unmarshal(stdout.Bytes(), &list); err != nil {
		return "", fmt.Errorf("pod-runner run printed no List: %w", err)
	}
	for _, item := range list.Items {
		if item["kind"] == primitiveType {
			out, err := yaml.Marshal(item)
			return string(out), err
		}
	}
	return "", fmt.Errorf("pod-runner run printed no %s", primitiveType)
}

// The suite at v1.15.1 also refers to its status constants under exported
// names it never declares: declared here, so that it builds as published.
const (
	SucceedConditionStatus = succeedConditionStatus
	FailureConditionStatus = failureConditionStatus
)
