package compile

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/load"
)

// exampleReasons are the documented reasons a Tekton example may not
// compile: features pod-runner does not run yet, or input pod-runner cannot
// have locally. Each is a substring of the *load.Error message.
var exampleReasons = []struct{ name, substr string }{
	{"pipelines in pipelines", "pipelines in pipelines is not supported yet"},
	{"custom tasks", "custom tasks is not supported yet"},
	{"remote resolution", "remote resolution"},
	{"isolated workspaces", "isolated workspaces is not supported yet"},
	{"step when expressions", "step when expressions is not supported yet"},
	{"env valueFrom fieldRef", "env valueFrom.fieldRef is not supported yet"},
	// Examples under alpha/ need enable-api-fields: alpha, or another flag a
	// fresh install leaves off; pod-runner runs with a fresh install's flags.
	{"feature flag off", "feature gate"},
	{"feature flag off", "feature flag"},
}

// exampleQuirks are examples Tekton itself would refuse (they are not run by
// Tekton's CI, or the API server drops the offending field silently where
// pod-runner decodes strictly), with the message pod-runner gives.
var exampleQuirks = map[string]string{
	// "mountpath" for mountPath: the CRD's pruning drops it; strict decoding refuses it.
	"pipelineruns/beta/isolated-workspaces.yaml": `unknown field "spec.pipelineSpec.tasks[0].taskSpec.steps[0].workspaces[0].mountpath"`,
	// $(results.digest-${i}.path) is not a declared result: the webhook refuses the Task.
	"pipelineruns/no-ci/compressed-results-pipeline.yaml": "non-existent variable",
	// Needs default-task-run-workspace-binding in the cluster's config-defaults.
	"taskruns/no-ci/default-workspaces.yaml": `declared workspace "source" is required but has not been bound`,
}

// setupKinds are cluster objects examples create beside the run; a local
// run has no use for them and they are dropped before loading.
var setupKinds = map[string]bool{
	"ServiceAccount": true, "PersistentVolumeClaim": true, "Role": true, "RoleBinding": true,
	"ClusterRole": true, "ClusterRoleBinding": true, "LimitRange": true, "ResourceQuota": true,
	"Deployment": true, "Service": true, "Pod": true, "Namespace": true, "SecretProviderClass": true,
}

func tektonDir(t testing.TB) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tektoncd/pipeline").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Fatalf("Tekton module not found: %v", err)
	}
	return dir
}

// TestTektonExamples compiles every example run of Tekton v1.15.1: each must
// compile, or fail with one of the documented reasons.
func TestTektonExamples(t *testing.T) {
	dir := tektonDir(t)
	var files []string
	for _, sub := range []string{"examples/v1/pipelineruns", "examples/v1/taskruns"} {
		err := filepath.WalkDir(filepath.Join(dir, sub), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".yaml") {
				files = append(files, p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(files) < 100 {
		t.Fatalf("found only %d examples under %s", len(files), dir)
	}
	counts := map[string]int{}
	runs := 0
	for _, f := range files {
		rel, _ := filepath.Rel(filepath.Join(dir, "examples/v1"), f)
		docs, err := readExample(f)
		if err != nil {
			if q := exampleQuirks[rel]; q != "" && strings.Contains(err.Error(), q) {
				counts["refused as Tekton would"]++
				continue
			}
			t.Errorf("%s: load: %v", rel, err)
			continue
		}
		// Some examples hold several runs: compile each with the definitions.
		for _, run := range docs {
			if run.Kind != load.KindPipelineRun && run.Kind != load.KindTaskRun {
				continue
			}
			runs++
			input := []load.Doc{run}
			for _, d := range docs {
				if d.Kind != load.KindPipelineRun && d.Kind != load.KindTaskRun {
					input = append(input, d)
				}
			}
			reason, err := compileExample(input)
			switch {
			case err != nil && exampleQuirks[rel] != "" && strings.Contains(err.Error(), exampleQuirks[rel]):
				counts["refused as Tekton would"]++
			case err != nil:
				t.Errorf("%s: %s: %v", rel, run.Display, err)
			default:
				counts[reason]++
				if testing.Verbose() && reason != "compiled" {
					t.Logf("%s: %s: %s", rel, run.Display, reason)
				}
			}
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%-40s %d", k, counts[k])
	}
	t.Logf("%-40s %d runs in %d files", "total", runs, len(files))
	if counts["compiled"] < runs/2 {
		t.Errorf("only %d of %d example runs compiled", counts["compiled"], runs)
	}
}

// compileExample compiles one example run: "compiled", or the documented
// reason it did not; an error for any other failure.
func compileExample(docs []load.Doc) (string, error) {
	_, err := Compile(context.Background(), docs, Options{})
	if err == nil {
		return "compiled", nil
	}
	var le *load.Error
	if !errors.As(err, &le) {
		return "", fmt.Errorf("not a *load.Error: %w", err)
	}
	for _, r := range exampleReasons {
		if strings.Contains(le.Msg, r.substr) {
			return "not compiled: " + r.name, nil
		}
	}
	return "", fmt.Errorf("undocumented failure: %w", err)
}

// readExample loads an example without its cluster setup documents.
func readExample(path string) ([]load.Doc, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var kept bytes.Buffer
	for {
		chunk, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		var h struct{ Kind string }
		if err := sigsyaml.Unmarshal(chunk, &h); err == nil && setupKinds[h.Kind] {
			continue
		}
		kept.WriteString("---\n")
		kept.Write(chunk)
	}
	return load.Read(filepath.Base(path), &kept)
}

// TestStepActionParamsExample compiles Tekton's example of params passed to
// a StepAction (examples/v1/taskruns/stepaction-params.yaml) and checks the
// environment against the values the example's own script expects.
func TestStepActionParamsExample(t *testing.T) {
	path := filepath.Join(tektonDir(t), "examples/v1/taskruns/stepaction-params.yaml")
	docs, err := readExample(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compile(context.Background(), docs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	step := c.Plan.GetTasks()[0].GetSpec().GetSteps()[0]
	// ARRAYVALUE=("${arrayparam0}" ...) names the variables, ARRAYEXPECTED=(...) their values.
	names := regexp.MustCompile(`ARRAYVALUE=\((.*)\)`).FindStringSubmatch(step.GetScript())
	want := regexp.MustCompile(`ARRAYEXPECTED=\((.*)\)`).FindStringSubmatch(step.GetScript())
	if names == nil || want == nil {
		t.Fatalf("script has no ARRAYVALUE/ARRAYEXPECTED: %q", step.GetScript())
	}
	quoted := regexp.MustCompile(`"([^"]*)"`)
	vars, values := quoted.FindAllStringSubmatch(names[1], -1), quoted.FindAllStringSubmatch(want[1], -1)
	if len(vars) != len(values) || len(vars) == 0 {
		t.Fatalf("%d variables, %d expected values", len(vars), len(values))
	}
	env := map[string]string{}
	for _, e := range step.GetEnv() {
		env[e.GetName()] = e.GetValue()
	}
	for i, v := range vars {
		name := strings.Trim(v[1], "${}")
		if env[name] != values[i][1] {
			t.Errorf("%s = %q, want %q", name, env[name], values[i][1])
		}
	}
}
