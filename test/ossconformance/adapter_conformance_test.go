//go:build conformance

package conformance_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/test/kube"
)

// ProcessAndSendToTekton is the vendor function of Tekton's conformance
// suite: it runs the PipelineRun or TaskRun with `pod-runner run` (the
// binary POD_RUNNER_BIN names) and returns the final run, with its
// status, as YAML.
//
// With POD_RUNNER_NAMESPACE set it creates the run there instead, with
// spec.managedBy set to pod-runner's controller and its images mapped to
// POD_RUNNER_IMAGE (the cluster has no registry), and waits for the
// controller to end it (onCluster).
func ProcessAndSendToTekton(inputYAML, primitiveType string, _ ...interface{}) (string, error) {
	if ns := os.Getenv("POD_RUNNER_NAMESPACE"); ns != "" {
		return onCluster(inputYAML, primitiveType, ns)
	}
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

// onCluster creates the run in namespace ns for pod-runner's controller and
// returns it once it has ended. The controller runs PipelineRuns: a TaskRun
// is wrapped into a one-task PipelineRun, and its TaskRun returned.
func onCluster(inputYAML, kind, ns string) (string, error) {
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(inputYAML), &obj); err != nil {
		return "", err
	}
	// The suite lets a vendor choose the workspaces' volumes (Delegate
	// makes a claim template an emptyDir).
	obj = kube.Delegate(obj)
	mapImages(obj, os.Getenv("POD_RUNNER_IMAGE"))
	in, err := yaml.Marshal(obj)
	if err != nil {
		return "", err
	}
	create := exec.Command("kubectl", "create", "-n", ns, "-f", "-")
	create.Stdin = bytes.NewReader(in)
	if out, err := create.CombinedOutput(); err != nil {
		return "", fmt.Errorf("kubectl create: %v: %s", err, out)
	}
	name := obj["metadata"].(map[string]any)["name"].(string)
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		out, err := exec.Command("kubectl", "get", "-n", ns, "pipelinerun.tekton.dev", name, "-o", "yaml").Output()
		if err != nil {
			continue
		}
		var pr struct {
			Status struct {
				Conditions      []struct{ Type, Status string } `json:"conditions"`
				ChildReferences []struct{ Name string }         `json:"childReferences"`
			} `json:"status"`
		}
		if yaml.Unmarshal(out, &pr) != nil || !ended(pr.Status.Conditions) {
			continue
		}
		if kind != "TaskRun" {
			return string(out), nil
		}
		if len(pr.Status.ChildReferences) == 0 {
			return "", fmt.Errorf("PipelineRun %s/%s ended with no TaskRun: %s", ns, name, out)
		}
		tr, err := exec.Command("kubectl", "get", "-n", ns, "taskrun.tekton.dev", pr.Status.ChildReferences[0].Name, "-o", "yaml").Output()
		return string(tr), err
	}
	return "", fmt.Errorf("%s %s/%s did not end within 3 minutes", kind, ns, name)
}

func ended(conditions []struct{ Type, Status string }) bool {
	for _, c := range conditions {
		if c.Type == "Succeeded" && c.Status != "Unknown" {
			return true
		}
	}
	return false
}

// mapImages sets every "image" field of obj to image.
func mapImages(v any, image string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if _, ok := e.(string); ok && k == "image" {
				v[k] = image
				continue
			}
			mapImages(e, image)
		}
	case []any:
		for _, e := range v {
			mapImages(e, image)
		}
	}
}
