package podman

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"knative.dev/pkg/apis"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/test/testbin"
)

// bins are the binaries a pipeline scenario needs, built once.
var bins struct {
	once     sync.Once
	injector string // injector compile: PipelineRun → Pod
	local    string // pod-runner run, for the local status to compare with
	err      error
}

// needPipeline skips t without podman and builds the injector and the
// local pod-runner once.
func needPipeline(t *testing.T) {
	t.Helper()
	needPodman(t)
	bins.once.Do(buildBinaries)
	if bins.err != nil {
		t.Fatal(bins.err)
	}
}

func buildBinaries() {
	if bins.injector, bins.err = testbin.Build("github.com/e7763abc/pod-runner/cmd/injector"); bins.err == nil {
		bins.local, bins.err = testbin.Build("github.com/e7763abc/pod-runner/cmd/pod-runner")
	}
}

// compilePod runs `injector compile` on the run's YAML.
func compilePod(t *testing.T, yaml string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.injector, "compile", "-f", "-", "--image", podRunnerImage, "-o", "yaml")
	cmd.Stdin = strings.NewReader(yaml)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("injector compile: %v\n%s", err, stderr.String())
	}
	return stdout.Bytes()
}

// runLocally runs the YAML with `pod-runner run -o json` and returns its
// Tekton status.
func runLocally(t *testing.T, yaml string) *tektonRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.local, "run", "-f", "-", "-o", "json")
	cmd.Stdin = strings.NewReader(yaml)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("pod-runner run: %v\n%s", err, stderr.String())
	}
	run, err := decodeList(stdout.Bytes())
	if err != nil {
		t.Fatalf("pod-runner run -o json: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	}
	return run
}

// tektonRun is a run's Tekton status: the PipelineRun and its TaskRuns by
// pipeline task.
type tektonRun struct {
	pr       *v1.PipelineRun
	taskRuns map[string]*v1.TaskRun
}

// decodeList reads a v1 List holding a PipelineRun and its TaskRuns.
func decodeList(b []byte) (*tektonRun, error) {
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, err
	}
	run := &tektonRun{taskRuns: map[string]*v1.TaskRun{}}
	for _, item := range list.Items {
		var head struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(item, &head); err != nil {
			return nil, err
		}
		switch head.Kind {
		case "PipelineRun":
			run.pr = &v1.PipelineRun{}
			if err := json.Unmarshal(item, run.pr); err != nil {
				return nil, err
			}
		case "TaskRun":
			tr := &v1.TaskRun{}
			if err := json.Unmarshal(item, tr); err != nil {
				return nil, err
			}
			run.taskRuns[tr.Labels["tekton.dev/pipelineTask"]] = tr
		}
	}
	if run.pr == nil {
		return nil, errors.New("no PipelineRun in the list")
	}
	return run, nil
}

// reason is the Succeeded condition of the run: "True/Succeeded".
func (r *tektonRun) reason() string {
	return conditionOf(r.pr.Status.GetCondition(apis.ConditionSucceeded))
}

// taskReason is a pipeline task's TaskRun condition, "" when it has none.
func (r *tektonRun) taskReason(task string) string {
	tr, ok := r.taskRuns[task]
	if !ok {
		return ""
	}
	return conditionOf(tr.Status.GetCondition(apis.ConditionSucceeded))
}

func conditionOf(c *apis.Condition) string {
	if c == nil {
		return ""
	}
	return string(c.Status) + "/" + c.Reason
}

// result is a pipeline result's value as JSON ("" when missing).
func (r *tektonRun) result(name string) string {
	for _, res := range r.pr.Status.Results {
		if res.Name == name {
			b, _ := json.Marshal(res.Value)
			return string(b)
		}
	}
	return ""
}

// summary is what must be the same in `pod-runner run` and in a pod: the
// run's condition, results, skipped tasks and children, and per TaskRun its
// condition, results, retries and steps' exit codes. Times, pod names and
// container names differ by nature.
func (r *tektonRun) summary() string {
	var b strings.Builder
	c := r.pr.Status.GetCondition(apis.ConditionSucceeded)
	fmt.Fprintf(&b, "pipelinerun %s: %s\n", conditionOf(c), messageOf(c))
	for _, res := range r.pr.Status.Results {
		v, _ := json.Marshal(res.Value)
		fmt.Fprintf(&b, "  result %s = %s\n", res.Name, v)
	}
	for _, s := range r.pr.Status.SkippedTasks {
		fmt.Fprintf(&b, "  skipped %s: %s\n", s.Name, s.Reason)
	}
	var children []string
	for _, ch := range r.pr.Status.ChildReferences {
		children = append(children, ch.PipelineTaskName+"="+ch.Name)
	}
	sort.Strings(children)
	fmt.Fprintf(&b, "  children %s\n", strings.Join(children, " "))
	tasks := make([]string, 0, len(r.taskRuns))
	for task := range r.taskRuns {
		tasks = append(tasks, task)
	}
	sort.Strings(tasks)
	for _, task := range tasks {
		tr := r.taskRuns[task]
		c := tr.Status.GetCondition(apis.ConditionSucceeded)
		fmt.Fprintf(&b, "taskrun %s %s: %s (retries %d)\n", task, conditionOf(c), messageOf(c), len(tr.Status.RetriesStatus))
		for _, res := range tr.Status.Results {
			v, _ := json.Marshal(res.Value)
			fmt.Fprintf(&b, "  result %s = %s\n", res.Name, v)
		}
		for _, s := range tr.Status.Steps {
			code := "-"
			if s.Terminated != nil {
				code = fmt.Sprintf("%d %s", s.Terminated.ExitCode, s.Terminated.Reason)
			}
			fmt.Fprintf(&b, "  step %s: %s\n", s.Name, code)
		}
	}
	return b.String()
}

func messageOf(c *apis.Condition) string {
	if c == nil {
		return ""
	}
	return c.Message
}

// podRun is a run played in one Pod under podman.
type podRun struct {
	*tektonRun
	pod *pod
}

// runInPod compiles the YAML into a Pod, plays it, waits for it to end and
// reads the status the supervisor published. during, if set, runs while the
// Pod runs (to kill a container, say).
func runInPod(t *testing.T, runName, yaml string, timeout time.Duration, during func(*pod)) *podRun {
	t.Helper()
	before := len(podIDs(t))
	p := play(t, compilePod(t, yaml))
	if during != nil {
		during(p)
	}
	p.wait(t, timeout)
	t.Logf("%s: kube play to every container stopped: %s", runName, p.ended.Round(time.Millisecond))
	if got := podsLabelled(t, "tekton.dev/pipelineRun", runName); got != 1 {
		t.Errorf("pods of the run: %d, want exactly 1", got)
	}
	if got := len(podIDs(t)) - before; got != 1 {
		t.Errorf("the run made %d pods, want exactly 1", got)
	}
	log := p.logs(t, podlayout.SupervisorContainer)
	run, err := readPublished(yaml, log)
	if err != nil {
		t.Fatalf("status published by the supervisor: %v\nsupervisor log:\n%s", err, log)
	}
	t.Logf("published status:\n%s", run.summary())
	return &podRun{tektonRun: run, pod: p}
}

func podIDs(t *testing.T) []string {
	t.Helper()
	out, err := podman(context.Background(), "pod", "ps", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(out)
}

// waitForLog waits until a container's log holds want, failing t after
// timeout.
func (p *pod) waitForLog(t *testing.T, container, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, _ := p.logsOf(p.container(container))
		if strings.Contains(out, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's log never showed %q within %s:\n%s", container, want, timeout, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
